"""The API's torch-free image-token count equals what the real adapters put into the prompt, for both families and
every mode, with the geometry the API reads from the checkpoint's JSON."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pytest
from PIL import Image
from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import get_optimal_tiled_canvas

from ocr_engine.image_tokens import ImageGeometry, page_image_tokens
from ocr_engine.model_info import load_model_info, read_image_geometry
from ocr_engine.models.loading import load_adapter
from ocr_engine.modes import FAMILY_MODES, OCR1, OCR2

PROMPT = "<image>\nFree OCR."
# Small pages, pages of one tile, odd aspect ratios, the ties of equal aspect ratio, and large scans.
SIZES = [
    (300, 200),
    (512, 700),
    (640, 640),
    (641, 300),
    (700, 700),
    (768, 769),
    (1000, 1000),
    (1191, 1684),
    (1200, 800),
    (1920, 1080),
    (800, 2400),
    (2481, 3508),
    (3000, 900),
]


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint: Path, tiny_v1_checkpoint: Path) -> dict:
    return {
        OCR2: load_adapter(str(tiny_checkpoint), device="cpu"),
        OCR1: load_adapter(str(tiny_v1_checkpoint), device="cpu"),
    }


@pytest.fixture(scope="module")
def geometries(tiny_checkpoint: Path, tiny_v1_checkpoint: Path) -> dict[str, ImageGeometry | None]:
    """What the API holds: the geometry read by `load_model_info`, without transformers' processor."""
    return {
        OCR2: load_model_info(str(tiny_checkpoint)).geometry,
        OCR1: load_model_info(str(tiny_v1_checkpoint)).geometry,
    }


def test_the_api_reads_the_geometry_the_adapter_loads(adapters: dict, tiny_checkpoint: Path) -> None:
    assert read_image_geometry(str(tiny_checkpoint)) == adapters[OCR2].geometry


@pytest.mark.parametrize(("family", "mode"), [(f, m) for f, modes in FAMILY_MODES.items() for m in modes])
def test_counts_equal_the_image_tokens_of_the_prepared_prompt(
    adapters: dict, geometries: dict, family: str, mode: str
) -> None:
    adapter = adapters[family]
    for width, height in SIZES:
        prepared = adapter.prepare(PROMPT, Image.new("RGB", (width, height), "white"), mode)
        in_prompt = prepared.input_ids.count(adapter.image_token_id)
        assert page_image_tokens(family, mode, width, height, geometries[family]) == in_prompt, (width, height)


def test_ocr2_grids_equal_transformers_processor() -> None:
    geometry = ImageGeometry()
    for width, height in product(range(769, 4000, 97), range(769, 4000, 89)):
        expected = get_optimal_tiled_canvas((height, width), (768, 768), geometry.min_tiles, geometry.max_tiles)
        assert geometry.tile_grid(width, height) == expected, (width, height)

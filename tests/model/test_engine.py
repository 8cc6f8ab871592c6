"""The engine on a tiny random checkpoint loaded through the real `from_pretrained` path."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import DeepseekOcr2ImageProcessorPil

from ocr_engine.engine import OcrEngine
from ocr_engine.errors import LimitExceeded, ModelUnavailable
from ocr_engine.models.deepseek_ocr2 import DeepseekOcr2Adapter, global_view, local_tiles, normalisation
from ocr_engine.models.loading import load_adapter
from ocr_engine.pixels import to_pixels
from ocr_engine.request import SamplingParams
from ocr_engine.sampling import make_generator
from ocr_engine.scheduler import SchedulerLimits
from tests.model.rows import Collect, generate, submit


def text_page(width: int, height: int, seed: int) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for line in range(25):
        draw.text((rng.randint(0, width - 80), rng.randint(0, height - 20)), f"Line {line} total 12.50", fill="black")
    return image


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint) -> DeepseekOcr2Adapter:
    return load_adapter(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def engine(adapter) -> OcrEngine:
    engine = OcrEngine(adapter, limits=SchedulerLimits(max_num_seqs=4))
    yield engine
    engine.close()


def test_loader_recognises_the_family_and_reports_missing_checkpoints(adapter, tmp_path):
    assert isinstance(adapter, DeepseekOcr2Adapter)
    assert adapter.dtype == torch.float32
    with pytest.raises(ModelUnavailable, match="OCRSERVE_MODEL"):
        load_adapter(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelUnavailable, match="not a DeepSeek-OCR model"):
        load_adapter(str(tmp_path))


@pytest.mark.parametrize("size", [(1191, 1684), (2000, 1000), (600, 400), (768, 769)])
def test_preprocessing_matches_transformers_processor(adapter, size):
    page = text_page(*size, seed=size[0])
    reference = DeepseekOcr2ImageProcessorPil.from_pretrained(adapter.model.name_or_path)(
        images=[page], return_tensors="pt"
    )
    geometry, cpu = adapter.geometry, torch.device("cpu")
    ours_global = to_pixels(global_view(page, geometry), normalisation(geometry), cpu, torch.float32)
    assert torch.allclose(ours_global, reference["pixel_values"], atol=1e-2)
    tiles = local_tiles(page, geometry)
    assert reference["num_local_patches"].tolist() == [0 if tiles is None else tiles.count]
    if tiles is not None:
        ours_tiles = to_pixels(tiles, normalisation(geometry), cpu, torch.float32)
        assert torch.allclose(ours_tiles, reference["pixel_values_local"], atol=1e-2)


def test_image_tokens_follow_the_tile_count(adapter):
    big = adapter.prepare("<image>\nFree OCR.", text_page(1191, 1684, 1), "gundam")
    small = adapter.prepare("<image>\nFree OCR.", text_page(600, 400, 2), "gundam")
    image_id = adapter.image_token_id
    assert small.input_ids.count(image_id) == 256 + 1
    assert big.input_ids.count(image_id) == 256 + 144 * big.vision["tiles"].shape[0] + 1
    global_only = adapter.prepare("<image>\nFree OCR.", text_page(1191, 1684, 1), "base")
    assert global_only.vision["tiles"] is None and global_only.input_ids.count(image_id) == 256 + 1


def test_a_page_decodes_the_same_alone_and_in_a_batch(engine, adapter):
    long_page = adapter.prepare("<image>\nFree OCR.", text_page(1191, 1684, 3), "gundam")
    short_page = adapter.prepare(
        "<image>\n<|grounding|>Convert the document to markdown.", text_page(500, 400, 4), "gundam"
    )
    params = SamplingParams(max_tokens=12)
    alone = [generate(engine, [page], params)[0] for page in (long_page, short_page)]
    assert generate(engine, [long_page, short_page], params) == alone


def test_budget_stop_and_cancel(engine, adapter):
    prompt = adapter.prepare("Hello", None, "gundam")
    sink = Collect()
    submit(engine, prompt, SamplingParams(max_tokens=5), sink)
    assert sink.result() == (sink.ids, "length") and len(sink.ids) == 5
    stopped = Collect(stop_after=1)
    submit(engine, prompt, SamplingParams(max_tokens=50), stopped)
    ids, end = stopped.result()
    assert end == "stop" and ids[0] == sink.ids[0] and len(ids) < 50  # it may run a step past the request
    cancelled = Collect()
    row = submit(engine, prompt, SamplingParams(max_tokens=200), cancelled)
    cancelled.wait_for(lambda s: len(s.ids) >= 2)
    row.cancel()
    assert cancelled.result()[1] == "cancelled" and len(cancelled.ids) < 200


def test_sampling_is_reproducible_with_a_seed(engine, adapter):
    prompt = adapter.prepare("Hello", None, "gundam")
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=7)
    runs = []
    for _ in range(2):
        sink = Collect()
        submit(engine, prompt, params, sink, generator=make_generator(params, adapter.device))
        runs.append(sink.result()[0])
    assert runs[0] == runs[1]


def test_prompt_longer_than_the_model_is_refused(engine):
    with pytest.raises(LimitExceeded, match="model's length"):
        engine.row_budget(engine.adapter.max_model_len, SamplingParams())

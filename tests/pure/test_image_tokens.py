"""Image tokens without torch: page sizes read from headers match the decoded pages, the geometry read from config
JSON, and the per-page counts (parity with the real adapters is in tests/model/test_image_tokens.py)."""

from __future__ import annotations

import io
import subprocess
import sys

import pymupdf
import pytest
from PIL import ExifTags, Image, ImageFile

from ocr_engine.documents import DocumentLimits, document_page_sizes, iter_document_pages, load_document
from ocr_engine.errors import LimitExceeded
from ocr_engine.image_tokens import ImageGeometry, page_image_tokens, request_image_tokens
from ocr_engine.modes import OCR1, OCR2

LIMITS = DocumentLimits()


def rotated_pdf() -> bytes:
    """Pages of odd sizes in points, turned by /Rotate and cut by a crop box: what the rasterizer must measure."""
    document = pymupdf.open()
    for index, (width, height) in enumerate([(200.3, 260.7), (612, 792), (97.5, 1400.2), (841.9, 595.3)]):
        page = document.new_page(width=width, height=height)
        page.insert_text((20, 40), f"Page {index + 1}")
        page.set_rotation(90 * index)
        if index == 3:
            page.set_cropbox(pymupdf.Rect(3.3, 7.1, width - 11.6, height - 2.2))
    return document.tobytes()


@pytest.mark.parametrize("dpi", [72, 100, 144, 217, 300])
def test_pdf_page_sizes_match_the_rendered_pages(dpi: int) -> None:
    document = load_document(rotated_pdf(), limits=LIMITS)
    rendered = [page.size for page in iter_document_pages(document, dpi, LIMITS)]
    assert document_page_sizes(document, dpi, LIMITS) == rendered
    assert len(set(rendered)) == 4


def test_pdf_page_sizes_follow_the_page_selection() -> None:
    document = load_document(rotated_pdf(), pages="2,4", limits=LIMITS)
    assert document_page_sizes(document, 144, LIMITS) == [
        page.size for page in iter_document_pages(document, 144, LIMITS)
    ]


def test_pdf_pages_over_max_pixels_are_refused_before_rendering() -> None:
    document = load_document(rotated_pdf(), pages="1,3", limits=LIMITS)
    with pytest.raises(LimitExceeded, match=r"PDF page 3 at 300 dpi .*OCRSERVE_MAX_PIXELS"):
        document_page_sizes(document, 300, DocumentLimits(max_pixels=2_000_000))


def encoded(fmt: str, orientation: int) -> bytes:
    """A 300x200 page with an EXIF orientation (a multi-page TIFF adds a 120x500 second page)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    extra = {"save_all": True, "append_images": [Image.new("RGB", (120, 500), "white")]} if fmt == "TIFF" else {}
    Image.new("RGB", (300, 200), "white").save(buffer, fmt, exif=exif, **extra)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_image_page_sizes_match_the_decoded_upright_pages(fmt: str, orientation: int) -> None:
    document = load_document(encoded(fmt, orientation), limits=LIMITS)
    decoded = [page.size for page in iter_document_pages(document, 144, LIMITS)]
    assert document_page_sizes(document, 144, LIMITS) == decoded
    assert decoded[0] == ((200, 300) if orientation >= 5 else (300, 200))


def plain_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "size"), [(plain_png(), (300, 200)), (encoded("PNG", 6), (200, 300)), (encoded("JPEG", 8), (200, 300))]
)
def test_image_page_sizes_decode_no_pixels(monkeypatch: pytest.MonkeyPatch, data: bytes, size: tuple[int, int]) -> None:
    document = load_document(data, limits=LIMITS)

    def refuse(*_: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert document_page_sizes(document, 144, LIMITS) == [size]


def test_the_token_module_needs_no_torch() -> None:
    code = "import sys, ocr_engine.image_tokens, ocr_engine.model_info; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_geometry_from_transformers_5_and_legacy_configs() -> None:
    nested = {
        "patch_size": 16,
        "downsample_ratio": 4,
        "image_processor": {"size": {"height": 1024, "width": 1024}, "tile_size": 768, "max_patches": 6},
    }
    assert ImageGeometry.from_configs(nested, nested["image_processor"]) == ImageGeometry()
    legacy = ImageGeometry.from_configs({}, {"size": {"height": 1280}, "tile_size": 640, "max_patches": 9})
    assert (legacy.global_size, legacy.tile_size, legacy.max_tiles) == (1280, 640, 9)
    assert (legacy.tokens_per_global, legacy.tokens_per_tile) == (400, 100)


@pytest.mark.parametrize(
    ("family", "mode", "size", "tokens"),
    [
        (OCR2, "base", (3000, 1000), 257),  # the 16x16 global view and the separator
        (OCR2, "gundam", (700, 760), 257),  # fits one 768 px tile: no tiles
        (OCR2, "gundam", (1200, 1600), 257 + 144 * 6),  # 3:4 is closest to a 2x3 grid
        (OCR2, "gundam", (2400, 1000), 257 + 144 * 2),  # 2x1 (3x1 is further, 5x2 has too many tiles)
        (OCR2, "gundam", (3000, 3000), 257 + 144 * 4),  # square: 1x1 is below the minimum of 2 tiles, so 2x2
        (OCR1, "tiny", (3000, 1000), 73),
        (OCR1, "large", (800, 1200), 421),
        (OCR1, "gundam", (640, 600), 273),
        (OCR1, "gundam", (1200, 800), 893),
    ],
)
def test_page_image_tokens(family: str, mode: str, size: tuple[int, int], tokens: int) -> None:
    assert page_image_tokens(family, mode, *size, ImageGeometry()) == tokens


def test_request_image_tokens_count_every_selected_page_in_order() -> None:
    pdf = load_document(rotated_pdf(), pages="1-2", limits=LIMITS)
    image = load_document(encoded("JPEG", 6), limits=LIMITS)
    sizes = [*document_page_sizes(pdf, 144, LIMITS), *document_page_sizes(image, 144, LIMITS)]
    expected = [page_image_tokens(OCR2, "gundam", w, h, ImageGeometry()) for w, h in sizes]
    counts = request_image_tokens(
        [pdf, image], family=OCR2, mode="gundam", dpi=144, geometry=ImageGeometry(), limits=LIMITS
    )
    assert counts == expected and len(sizes) == 3

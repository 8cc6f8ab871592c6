"""Image decoding: frames, orientation, transparency, colour modes, limits and corrupt data."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

from ocr_engine.documents import DocumentLimits
from ocr_engine.documents.images import count_image_pages, iter_image_pages
from ocr_engine.errors import LimitExceeded, UnsupportedDocument

LIMITS = DocumentLimits()
RED, BLUE, GREEN, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, fmt: str, **save_options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def encode_pages(colors: list[tuple[int, int, int]], fmt: str = "TIFF", size: tuple[int, int] = (16, 8)) -> bytes:
    """A multi-frame image with one solid colour per frame."""
    frames = [Image.new("RGB", size, color) for color in colors]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def first_page(data: bytes, limits: DocumentLimits = LIMITS) -> Image.Image:
    return next(iter_image_pages(data, [0], limits))


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_exif_orientation_6_is_applied() -> None:
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to display
    page = first_page(encode(image, "JPEG", exif=exif, quality=95))
    assert page.size == (20, 40)
    assert close_to(page.getpixel((10, 5)), RED)  # the left edge ends up on top
    assert close_to(page.getpixel((10, 35)), BLUE)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (10, 0, 20, 10))
    page = first_page(encode(image, "PNG"))
    assert page.mode == "RGB"
    assert page.getpixel((2, 5)) == WHITE
    assert page.getpixel((15, 5)) == BLACK


def test_grey_with_alpha_is_flattened_onto_white() -> None:
    image = Image.new("LA", (10, 10), (0, 0))
    assert first_page(encode(image, "PNG")).getpixel((5, 5)) == WHITE


def test_palette_gif_with_transparency_is_flattened_onto_white() -> None:
    image = Image.new("P", (10, 10), 1)
    image.putpalette([*BLACK, *RED] + [0] * 762)
    page = first_page(encode(image, "GIF", transparency=1))
    assert page.getpixel((5, 5)) == WHITE


def test_palette_gif_keeps_its_colours() -> None:
    image = Image.new("RGB", (10, 10), GREEN).convert("P")
    page = first_page(encode(image, "GIF"))
    assert page.mode == "RGB"
    assert page.getpixel((5, 5)) == GREEN


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # red in CMYK
    page = first_page(encode(image, "JPEG", quality=95))
    assert page.mode == "RGB"
    assert close_to(page.getpixel((5, 5)), RED)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    image = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 32768, 65535)):
        image.putpixel((x, 0), value)
    page = first_page(encode(image, "PNG"))
    assert page.getpixel((0, 0)) == BLACK
    assert close_to(page.getpixel((1, 0)), (128, 128, 128), tolerance=2)
    assert page.getpixel((2, 0)) == WHITE


@pytest.mark.parametrize("fmt", ["BMP", "WEBP", "PNG"])
def test_single_page_formats_decode_to_rgb(fmt: str) -> None:
    data = encode(Image.new("RGB", (12, 6), BLUE), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert count_image_pages(data, LIMITS) == 1
    page = first_page(data)
    assert (page.mode, page.size, page.getpixel((3, 3))) == ("RGB", (12, 6), BLUE)


def test_multi_page_tiff_counts_and_yields_each_page() -> None:
    data = encode_pages([RED, GREEN, BLUE])
    assert count_image_pages(data, LIMITS) == 3
    pages = list(iter_image_pages(data, [2, 0], LIMITS))
    assert [page.getpixel((1, 1)) for page in pages] == [BLUE, RED]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_count_as_one_page_the_first_frame(fmt: str) -> None:
    data = encode_pages([RED, GREEN, BLUE], fmt=fmt)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # the fixture really is animated
    assert count_image_pages(data, LIMITS) == 1
    assert close_to(first_page(data).getpixel((1, 1)), RED)


def test_pixel_limit_is_checked_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    decoded: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    small = DocumentLimits(max_pixels=5_000)
    with pytest.raises(LimitExceeded) as caught:
        count_image_pages(data, small)
    assert "OCRSERVE_MAX_PIXELS" in caught.value.message
    assert "10,000" in caught.value.message
    with pytest.raises(LimitExceeded):
        first_page(data, small)
    assert decoded == []


def test_an_oversized_later_tiff_page_is_refused_by_number() -> None:
    small, big = Image.new("RGB", (10, 10), RED), Image.new("RGB", (100, 100), RED)
    data = encode(small, "TIFF", save_all=True, append_images=[big])
    with pytest.raises(LimitExceeded, match="image page 2"):
        count_image_pages(data, DocumentLimits(max_pixels=1_000))


def test_pillow_decompression_bomb_error_becomes_limit_exceeded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (200, 200), RED), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40,000 px is over twice Pillow's limit
    with pytest.raises(LimitExceeded, match="OCRSERVE_MAX_PIXELS"):
        count_image_pages(data, LIMITS)


def test_garbage_after_a_png_signature_is_unsupported() -> None:
    with pytest.raises(UnsupportedDocument, match="could not decode image"):
        count_image_pages(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_unsupported_when_decoded(fmt: str) -> None:
    noisy = Image.effect_noise((64, 64), 80).convert("RGB")
    data = encode(noisy, fmt)
    with pytest.raises(UnsupportedDocument, match="could not decode image"):
        first_page(data[: len(data) // 2])

"""Decode images into upright RGB pages with Pillow, checking their size before any pixel data is decoded."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ocr_engine.documents.limits import DocumentLimits
from ocr_engine.errors import LimitExceeded, UnsupportedDocument

if TYPE_CHECKING:  # type only: importing it at run time would register TIFF ahead of Pillow's plugin order
    from PIL.TiffImagePlugin import TiffImageFile

# Only TIFF pages are document pages; GIF/WEBP frames are animation, so those count as one page (the first).
_MULTI_PAGE_FORMATS = frozenset({"TIFF"})
# What Pillow raises on corrupt or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_WHITE = (255, 255, 255, 255)
_SIDEWAYS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


@contextmanager
def _open_image(data: bytes, limits: DocumentLimits) -> Iterator[Image.Image]:
    """Open lazily (header only); Pillow errors raised inside the block become client-facing errors."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            yield image
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(
            f"image is too large to decode safely; the limit is {limits.max_pixels:,} pixels per page"
            " (OCRSERVE_MAX_PIXELS)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedDocument("could not decode image: unknown format or corrupt data") from exc
    except _DECODE_ERRORS as exc:
        raise UnsupportedDocument(f"could not decode image: {exc}") from exc


def _select_frame(image: Image.Image, index: int, limits: DocumentLimits) -> None:
    """Seek to a page and refuse it by its header size, before its pixels are decoded."""
    image.seek(index)
    subject = f"image page {index + 1}" if index else "image"
    limits.check_pixels(image.width, image.height, subject)


def count_image_pages(data: bytes, limits: DocumentLimits) -> int:
    """Pages of an image (frames of a multi-page TIFF, else 1), checking every page against max_pixels."""
    with _open_image(data, limits) as image:
        # A TIFF is opened by Pillow's TiffImageFile, the class that counts its frames.
        count = cast("TiffImageFile", image).n_frames if image.format in _MULTI_PAGE_FORMATS else 1
        for index in range(count):
            _select_frame(image, index, limits)
        return count


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The frame's size once `exif_transpose` has turned it, read from the header without decoding pixels."""
    width, height = image.size
    if image.format == "TIFF":  # Pillow's TIFF reader already reports the turned size: it turns frames as it loads
        return width, height
    # The base class reads only what the header gave; PNG's own getexif decodes the image to look for a late eXIf.
    orientation = Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)
    return (height, width) if orientation in _SIDEWAYS else (width, height)


def image_page_sizes(data: bytes, pages: Sequence[int], limits: DocumentLimits) -> list[tuple[int, int]]:
    """Sizes of the selected 0-based pages as `iter_image_pages` yields them (upright), decoding no pixels."""
    with _open_image(data, limits) as image:
        sizes = []
        for index in pages:
            _select_frame(image, index, limits)
            sizes.append(_upright_size(image))
        return sizes


def iter_image_pages(data: bytes, pages: Sequence[int], limits: DocumentLimits) -> Iterator[Image.Image]:
    """Yield the selected 0-based pages as upright RGB images, decoding one page at a time."""
    with _open_image(data, limits) as image:
        for index in pages:
            _select_frame(image, index, limits)
            image.load()
            yield _to_rgb(ImageOps.exif_transpose(image))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white (what a scan shows) and bring every mode to 8-bit RGB."""
    if image.has_transparency_data:
        background = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale high-bit-depth grey to 0..255; a plain convert would clip everything above 255 to white."""
    _, high = cast(tuple[float, float], image.getextrema())  # one band (I, F, I;16): one (min, max) pair
    if high > 255:
        image = image.point(lambda value: value * (255 / high))
    return image.convert("L")

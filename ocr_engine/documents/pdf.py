"""Count and rasterize PDF pages with PyMuPDF, one page raster alive at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pymupdf
from PIL import Image

from ocr_engine.documents.limits import DocumentLimits
from ocr_engine.errors import InvalidInput, UnsupportedDocument

_POINTS_PER_INCH = 72


def _open_pdf(data: bytes) -> pymupdf.Document:
    """Open a PDF that can be read without a password; the caller closes it."""
    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except (RuntimeError, ValueError) as exc:  # pymupdf.FileDataError is a RuntimeError
        raise UnsupportedDocument("could not open PDF: the file is corrupt or not a PDF") from exc
    if document.needs_pass:
        document.close()
        raise UnsupportedDocument("PDF is password-protected; send it without a password")
    return document


def count_pdf_pages(data: bytes) -> int:
    """Number of pages; a PDF without pages is refused, as there is nothing to read."""
    document = _open_pdf(data)
    try:
        count = document.page_count
    finally:
        document.close()
    if count == 0:
        raise InvalidInput("PDF has no pages")
    return count


def _raster_size(page: pymupdf.Page, dpi: int) -> tuple[int, int]:
    """Width and height in pixels of `page` rendered at `dpi`, computed without rendering it."""
    zoom = dpi / _POINTS_PER_INCH
    box = (page.rect * pymupdf.Matrix(zoom, zoom)).irect
    return box.width, box.height


def _checked_raster_size(page: pymupdf.Page, dpi: int, limits: DocumentLimits) -> tuple[int, int]:
    width, height = _raster_size(page, dpi)
    limits.check_pixels(width, height, f"PDF page {page.number + 1} at {dpi} dpi", hint="; use a lower dpi")
    return width, height


def pdf_page_sizes(data: bytes, pages: Sequence[int], dpi: int, limits: DocumentLimits) -> list[tuple[int, int]]:
    """Pixel sizes of the selected 0-based pages at `dpi`, as `iter_pdf_pages` renders them, rendering none."""
    limits.check_dpi(dpi)
    document = _open_pdf(data)
    try:
        return [_checked_raster_size(document.load_page(index), dpi, limits) for index in pages]
    finally:
        document.close()


def iter_pdf_pages(data: bytes, pages: Sequence[int], dpi: int, limits: DocumentLimits) -> Iterator[Image.Image]:
    """Yield the selected 0-based pages as RGB images at `dpi`, rendering each only when it is asked for."""
    limits.check_dpi(dpi)
    document = _open_pdf(data)
    try:
        for index in pages:
            page = document.load_page(index)
            _checked_raster_size(page, dpi, limits)
            yield _render(page, dpi)
    finally:
        document.close()


def _render(page: pymupdf.Page, dpi: int) -> Image.Image:
    """Rasterize one page; the pixmap is freed on return, so only the yielded image stays alive."""
    try:
        pixmap = page.get_pixmap(dpi=dpi, alpha=False)
    except RuntimeError as exc:
        raise UnsupportedDocument(f"could not render PDF page {page.number + 1}: the page is corrupt") from exc
    return Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples_mv, "raw", "RGB", pixmap.stride)

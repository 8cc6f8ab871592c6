"""PDF page counting and lazy rasterizing with PyMuPDF."""

from __future__ import annotations

from collections.abc import Callable

import pymupdf
import pytest

from ocr_engine.documents import DocumentLimits
from ocr_engine.documents.pdf import count_pdf_pages, iter_pdf_pages
from ocr_engine.errors import InvalidInput, LimitExceeded, UnsupportedDocument

LIMITS = DocumentLimits()
A4 = (595, 842)
COLORS = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]  # PyMuPDF colours are 0..1 floats
ZERO_PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def make_pdf(page_count: int, size: tuple[int, int] = A4, **save_options: object) -> bytes:
    """A PDF whose page i says "Page i+1" and is filled with COLORS[i % 3]."""
    document = pymupdf.open()
    for index in range(page_count):
        page = document.new_page(width=size[0], height=size[1])
        page.draw_rect(page.rect, color=None, fill=COLORS[index % 3])
        page.insert_text((72, 72), f"Page {index + 1}")
    return document.tobytes(**save_options)


def _count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[int]:
    """Wrap cls.name so that each call appends to the returned list."""
    calls: list[int] = []
    original: Callable[..., object] = getattr(cls, name)

    def counting(self: object, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counting)
    return calls


def test_counts_pages() -> None:
    assert count_pdf_pages(make_pdf(3)) == 3


def test_corrupt_pdf_is_unsupported() -> None:
    with pytest.raises(UnsupportedDocument, match="corrupt"):
        count_pdf_pages(b"%PDF-1.7\n" + bytes(range(256)) * 4)


def test_truncated_pdf_is_unsupported() -> None:
    data = make_pdf(2)
    with pytest.raises(UnsupportedDocument):
        count_pdf_pages(data[: len(data) // 2])


def test_password_protected_pdf_is_unsupported() -> None:
    data = make_pdf(1, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="x", owner_pw="y")
    with pytest.raises(UnsupportedDocument, match="password-protected"):
        count_pdf_pages(data)
    with pytest.raises(UnsupportedDocument, match="password-protected"):
        next(iter_pdf_pages(data, [0], 72, LIMITS))


def test_encrypted_pdf_that_needs_no_password_is_read() -> None:
    data = make_pdf(2, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="", owner_pw="y")
    assert count_pdf_pages(data) == 2


def test_pdf_without_pages_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="PDF has no pages") as caught:
        count_pdf_pages(ZERO_PAGE_PDF)
    assert not isinstance(caught.value, UnsupportedDocument)


def test_renders_selected_pages_in_order_at_the_requested_dpi() -> None:
    pages = list(iter_pdf_pages(make_pdf(3), [2, 0], 72, LIMITS))
    assert [page.mode for page in pages] == ["RGB", "RGB"]
    assert [page.size for page in pages] == [A4, A4]
    assert pages[0].getpixel((300, 500)) == (0, 0, 255)
    assert pages[1].getpixel((300, 500)) == (255, 0, 0)


def test_dpi_scales_the_raster() -> None:
    page = next(iter_pdf_pages(make_pdf(1, size=(72, 144)), [0], 150, LIMITS))
    assert page.size == (150, 300)


def test_rotated_page_renders_upright() -> None:
    document = pymupdf.open()
    document.new_page(width=200, height=100).set_rotation(90)
    page = next(iter_pdf_pages(document.tobytes(), [0], 72, LIMITS))
    assert page.size == (100, 200)


def test_pages_are_rendered_lazily_and_the_document_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    renders = _count_calls(monkeypatch, pymupdf.Page, "get_pixmap")
    closes = _count_calls(monkeypatch, pymupdf.Document, "close")
    pages = iter_pdf_pages(make_pdf(50), range(50), 72, LIMITS)
    assert renders == []
    next(pages)
    assert len(renders) == 1
    next(pages)
    assert len(renders) == 2
    assert closes == []
    pages.close()
    assert len(renders) == 2
    assert len(closes) == 1


def test_document_is_closed_when_pages_run_out(monkeypatch: pytest.MonkeyPatch) -> None:
    closes = _count_calls(monkeypatch, pymupdf.Document, "close")
    assert len(list(iter_pdf_pages(make_pdf(2), [0, 1], 72, LIMITS))) == 2
    assert len(closes) == 1


def test_raster_over_the_pixel_limit_is_refused_before_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    width, height = next(iter_pdf_pages(make_pdf(1), [0], 300, LIMITS)).size
    renders = _count_calls(monkeypatch, pymupdf.Page, "get_pixmap")
    limits = DocumentLimits(max_pixels=1_000_000)
    with pytest.raises(LimitExceeded) as caught:
        list(iter_pdf_pages(make_pdf(1), [0], 300, limits))
    message = caught.value.message
    assert "OCRSERVE_MAX_PIXELS" in message
    assert f"{width}x{height} = {width * height:,} pixels" in message  # predicted size = rendered size
    assert "lower dpi" in message
    assert renders == []
    assert len(list(iter_pdf_pages(make_pdf(1), [0], 100, limits))) == 1  # 827x1170 fits


def test_dpi_above_the_limit_is_refused() -> None:
    with pytest.raises(LimitExceeded, match="OCRSERVE_MAX_DPI"):
        next(iter_pdf_pages(make_pdf(1), [0], 301, LIMITS))


@pytest.mark.parametrize("dpi", [0, -72])
def test_dpi_must_be_positive(dpi: int) -> None:
    with pytest.raises(InvalidInput, match="dpi must be positive"):
        next(iter_pdf_pages(make_pdf(1), [0], dpi, LIMITS))

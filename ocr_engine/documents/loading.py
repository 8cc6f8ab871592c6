"""Turn received bytes into a checked Document (size, type, pages, selection) before anything is queued."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ocr_engine.documents.images import count_image_pages
from ocr_engine.documents.limits import DocumentLimits
from ocr_engine.documents.pages import parse_page_selection
from ocr_engine.documents.pdf import count_pdf_pages
from ocr_engine.documents.sniff import sniff_kind
from ocr_engine.request import Document


def load_document(
    data: bytes,
    *,
    name: str = "",
    pages: str | Sequence[int] | None = None,
    limits: DocumentLimits,
) -> Document:
    """Check `data` against the limits and return it as a Document; bad input raises an OcrError."""
    limits.check_bytes(len(data))
    kind = sniff_kind(data)
    page_count = count_pdf_pages(data) if kind == "pdf" else count_image_pages(data, limits)
    selection = parse_page_selection(pages, page_count)
    if selection is None:
        limits.check_pages(page_count, "PDF has" if kind == "pdf" else "image has")
    else:
        limits.check_pages(len(selection), "the page selection has")
    return Document(data=data, kind=kind, name=name, page_count=page_count, pages=selection)


def check_page_total(documents: Iterable[Document], limits: DocumentLimits) -> None:
    """Refuse a request whose documents together select more pages than max_pages."""
    total = sum(len(document.selected_pages) for document in documents)
    limits.check_pages(total, "the documents have")

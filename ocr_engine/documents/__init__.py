"""Documents in, page images out: decoding, type sniffing, limits and rasterizing (fetching URLs is the API's:
`app.fetching`)."""

from ocr_engine.documents.limits import DocumentLimits
from ocr_engine.documents.loading import check_page_total, load_document
from ocr_engine.documents.pages import (
    PAGE_SELECTION_PATTERN,
    document_page_sizes,
    iter_document_pages,
    page_image,
    parse_page_selection,
)
from ocr_engine.documents.payload import decode_base64_payload
from ocr_engine.documents.sniff import sniff_kind

__all__ = [
    "PAGE_SELECTION_PATTERN",
    "DocumentLimits",
    "check_page_total",
    "decode_base64_payload",
    "document_page_sizes",
    "iter_document_pages",
    "load_document",
    "page_image",
    "parse_page_selection",
    "sniff_kind",
]

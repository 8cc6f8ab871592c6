"""Page selection: parse what the client asked for (1-based) and walk the selected pages of a document."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import msgspec
from PIL import Image

from ocr_engine.documents.images import image_page_sizes, iter_image_pages
from ocr_engine.documents.limits import DocumentLimits
from ocr_engine.documents.pdf import iter_pdf_pages, pdf_page_sizes
from ocr_engine.errors import InvalidInput
from ocr_engine.request import Document

_RANGE = re.compile(r"^(\d+)?\s*(-)?\s*(\d+)?$", re.ASCII)  # "3", "1-3", "2-", "-4"
_NUMBER = r"0*[1-9][0-9]*"
_SPACE = r"[ \t\n\r\f\v]*"  # the parser's whitespace: ASCII only, as `re.ASCII` reads `\s`
_PART = rf"(?:{_NUMBER}(?:{_SPACE}-{_SPACE}(?:{_NUMBER})?)?|-{_SPACE}{_NUMBER})"
PAGE_SELECTION_PATTERN = rf"^{_SPACE}(?:{_PART}{_SPACE}(?:,{_SPACE}{_PART}{_SPACE})*)?$"
"""The syntax of a selection string as a JSON Schema pattern (the API's schema): what `parse_page_selection`
accepts before it looks at the document (page counts and reversed ranges are the document's to judge)."""
_EXAMPLE = 'use page numbers from 1, e.g. "1-3,5", "2-" or [1, 3]'


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"pages: {message}", param="pages")


def _check_page(number: int, page_count: int) -> int:
    """Validate a 1-based page number and return its 0-based index."""
    if number < 1:
        raise _invalid(f"page {number} does not exist; {_EXAMPLE}")
    if number > page_count:
        noun = "page" if page_count == 1 else "pages"
        raise _invalid(f"page {number} is out of range; the document has {page_count} {noun}")
    return number - 1


def _parse_part(part: str, page_count: int) -> range:
    match = _RANGE.match(part.strip())
    if match is None or match.group(1, 3) == (None, None) or (match[2] is None and match[3] is not None):
        raise _invalid(f"{part.strip()!r} is not a page or a range; {_EXAMPLE}")
    first, dash, last = match.groups()
    if dash is None:
        index = _check_page(int(first), page_count)
        return range(index, index + 1)
    start = _check_page(int(first), page_count) if first else 0
    stop = _check_page(int(last), page_count) if last else page_count - 1
    if stop < start:
        raise _invalid(f"range {part.strip()!r} is reversed; write it as {last}-{first}")
    return range(start, stop + 1)


def parse_page_selection(spec: str | Sequence[int] | None, page_count: int) -> tuple[int, ...] | None:
    """Turn a client's 1-based selection into sorted unique 0-based indices; None (or blank) selects all."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, str):
        indices = {index for part in spec.split(",") for index in _parse_part(part, page_count)}
    else:
        if any(isinstance(number, bool) or not isinstance(number, int) for number in spec):
            raise _invalid(f"expected whole page numbers; {_EXAMPLE}")
        indices = {_check_page(number, page_count) for number in spec}
    if not indices:
        raise _invalid("the selection is empty; select at least one page")
    return tuple(sorted(indices))


def iter_document_pages(doc: Document, dpi: int, limits: DocumentLimits) -> Iterator[Image.Image]:
    """Yield the selected pages of `doc` as RGB images, one at a time; `dpi` applies to PDFs only."""
    if doc.kind == "pdf":
        return iter_pdf_pages(doc.data, doc.selected_pages, dpi, limits)
    return iter_image_pages(doc.data, doc.selected_pages, limits)


def document_page_sizes(doc: Document, dpi: int, limits: DocumentLimits) -> list[tuple[int, int]]:
    """(width, height) of each selected page as `iter_document_pages` yields it, read from headers alone (nothing is
    rendered or decoded), each checked against max_pixels as the rasterizer checks it."""
    if doc.kind == "pdf":
        return pdf_page_sizes(doc.data, doc.selected_pages, dpi, limits)
    return image_page_sizes(doc.data, doc.selected_pages, limits)


def page_image(documents: Sequence[Document], index: int, dpi: int, limits: DocumentLimits) -> Image.Image:
    """Page `index` (0-based, counting the selected pages of `documents` in order) as the model was given it:
    what its layout boxes are in the pixels of."""
    for doc in documents:
        pages = doc.selected_pages
        if index < len(pages):
            return next(iter_document_pages(msgspec.structs.replace(doc, pages=(pages[index],)), dpi, limits))
        index -= len(pages)
    raise IndexError("no such page")

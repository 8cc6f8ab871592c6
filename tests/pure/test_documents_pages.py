"""Page selections (1-based for clients, 0-based inside) and walking the selected pages of a document."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from ocr_engine.documents import (
    PAGE_SELECTION_PATTERN,
    DocumentLimits,
    iter_document_pages,
    load_document,
    parse_page_selection,
)
from ocr_engine.errors import InvalidInput
from tests.pure.test_documents_images import BLUE, GREEN, RED, encode_pages
from tests.pure.test_documents_pdf import make_pdf

LIMITS = DocumentLimits()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("1-3,5", (0, 1, 2, 4)),
        ("2-", (1, 2, 3, 4, 5)),
        ("-2", (0, 1)),
        ("4", (3,)),
        (" 3 , 1 - 2 ,2", (0, 1, 2)),
        ("6-6", (5,)),
        ([3, 1, 3], (0, 2)),
        ((6,), (5,)),
    ],
)
def test_valid_selections(spec: str | Sequence[int] | None, expected: tuple[int, ...] | None) -> None:
    assert parse_page_selection(spec, 6) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("7", "page 7 is out of range; the document has 6 pages"),
        ("5-9", "page 9 is out of range"),
        ("7-", "page 7 is out of range"),
        ("0", "page 0 does not exist"),
        ("4-2", "range '4-2' is reversed; write it as 2-4"),
        ("a", "'a' is not a page or a range"),
        ("1-2-3", "'1-2-3' is not a page or a range"),
        ("1,,2", "'' is not a page or a range"),
        ("-", "'-' is not a page or a range"),
        ("1.5", "'1.5' is not a page or a range"),
        ("3 4", "'3 4' is not a page or a range"),
        ("٣", "'٣' is not a page or a range"),  # non-ASCII digits are not page numbers
        ([0], "page 0 does not exist"),
        ([7], "page 7 is out of range"),
        ([True], "expected whole page numbers"),
        ([1.0], "expected whole page numbers"),
        ([], "the selection is empty"),
    ],
)
def test_invalid_selections_name_the_pages_param(spec: str | Sequence[int], fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_page_selection(spec, 6)
    assert caught.value.param == "pages"
    assert fragment in caught.value.message


def test_out_of_range_message_uses_singular_for_one_page() -> None:
    with pytest.raises(InvalidInput, match=r"the document has 1 page$"):
        parse_page_selection("2", 1)


def test_iter_document_pages_renders_the_selected_pdf_pages() -> None:
    document = load_document(make_pdf(3), pages="2-3", limits=LIMITS)
    pages = list(iter_document_pages(document, 36, LIMITS))
    assert [page.size for page in pages] == [(298, 421), (298, 421)]  # A4 at half of 72 dpi
    assert [page.getpixel((100, 200)) for page in pages] == [(0, 255, 0), (0, 0, 255)]


def test_iter_document_pages_decodes_the_selected_image_pages() -> None:
    document = load_document(encode_pages([RED, GREEN, BLUE]), pages=[1, 3], limits=LIMITS)
    pages = list(iter_document_pages(document, 144, LIMITS))
    assert [page.getpixel((0, 0)) for page in pages] == [RED, BLUE]


def test_iter_document_pages_walks_every_page_without_a_selection() -> None:
    document = load_document(make_pdf(4), limits=LIMITS)
    assert len(list(iter_document_pages(document, 18, LIMITS))) == 4


@pytest.mark.parametrize(
    ("spec", "well_formed"),
    [
        ("", True),
        (" 3 , 1 - 2 ,2", True),
        ("2-", True),
        ("-2", True),
        ("07", True),
        ("4-2", True),  # well formed: that it is reversed is the parser's to say
        ("a", False),
        ("1-2-3", False),
        ("1,,2", False),
        ("1,", False),
        ("-", False),
        ("0", False),
        ("1.5", False),
        ("3 4", False),
        ("٣", False),
        ("1\u00a0-\u00a03", False),  # no-break spaces: the parser's whitespace is ASCII
    ],
)
def test_the_schema_pattern_agrees_with_the_parser(spec: str, well_formed: bool) -> None:
    """The API's schema shows the syntax: a string it refuses, the parser refuses too, whatever the page count."""
    assert (re.search(PAGE_SELECTION_PATTERN, spec) is not None) is well_formed
    if well_formed and spec != "4-2":  # a reversed range is the parser's own refusal, not the syntax's
        parse_page_selection(spec, 1000)
    elif not well_formed:
        with pytest.raises(InvalidInput):
            parse_page_selection(spec, 1000)

"""load_document, check_page_total and decode_base64_payload: what the API edge does with received bytes."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from ocr_engine.documents import DocumentLimits, check_page_total, decode_base64_payload, load_document
from ocr_engine.errors import InvalidInput, LimitExceeded, UnsupportedDocument
from ocr_engine.request import Document
from tests.pure.test_documents_images import RED, encode, encode_pages
from tests.pure.test_documents_pdf import ZERO_PAGE_PDF, make_pdf

LIMITS = DocumentLimits()
PNG = encode(Image.new("RGB", (20, 10), RED), "PNG")


def test_loads_a_pdf_with_its_page_count_and_selection() -> None:
    document = load_document(make_pdf(5), name="report.pdf", pages="2-3", limits=LIMITS)
    assert (document.kind, document.name, document.page_count) == ("pdf", "report.pdf", 5)
    assert document.pages == (1, 2)
    assert document.selected_pages == (1, 2)


def test_loads_an_image_and_a_multi_page_tiff() -> None:
    assert load_document(PNG, limits=LIMITS) == Document(data=PNG, kind="image", page_count=1)
    tiff = load_document(encode_pages([RED, RED, RED]), limits=LIMITS)
    assert (tiff.kind, tiff.page_count, tiff.selected_pages) == ("image", 3, (0, 1, 2))


def test_document_over_max_bytes_is_refused_naming_the_setting() -> None:
    with pytest.raises(LimitExceeded) as caught:
        load_document(PNG, limits=DocumentLimits(max_bytes=len(PNG) - 1))
    assert f"is {len(PNG):,} bytes" in caught.value.message
    assert "OCRSERVE_MAX_DOCUMENT_BYTES" in caught.value.message
    assert load_document(PNG, limits=DocumentLimits(max_bytes=len(PNG))).page_count == 1


def test_pdf_over_max_pages_is_refused_unless_a_selection_fits() -> None:
    limits = DocumentLimits(max_pages=3)
    with pytest.raises(LimitExceeded) as caught:
        load_document(make_pdf(5), limits=limits)
    assert caught.value.message == "PDF has 5 pages; the limit is 3 pages per request (OCRSERVE_MAX_PAGES)"
    with pytest.raises(LimitExceeded, match="the page selection has 4 pages"):
        load_document(make_pdf(5), pages="2-", limits=limits)
    assert load_document(make_pdf(5), pages="1-3", limits=limits).pages == (0, 1, 2)


def test_image_over_the_pixel_limit_is_refused_at_load() -> None:
    with pytest.raises(LimitExceeded, match="OCRSERVE_MAX_PIXELS"):
        load_document(PNG, limits=DocumentLimits(max_pixels=199))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidInput),
        (b"just text", UnsupportedDocument),
        (b"\x89PNG\r\n\x1a\nnot really", UnsupportedDocument),
        (ZERO_PAGE_PDF, InvalidInput),
    ],
)
def test_bad_documents_are_refused(data: bytes, error: type[InvalidInput]) -> None:
    with pytest.raises(error):
        load_document(data, limits=LIMITS)


def test_page_selection_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidInput, match="page 4 is out of range") as caught:
        load_document(make_pdf(3), pages=[4], limits=LIMITS)
    assert caught.value.param == "pages"


def test_check_page_total_counts_selected_pages_of_all_documents() -> None:
    two_of_five = Document(data=b"", kind="pdf", page_count=5, pages=(0, 1))
    image = Document(data=b"", kind="image")
    check_page_total([two_of_five, image], DocumentLimits(max_pages=3))
    with pytest.raises(LimitExceeded) as caught:
        check_page_total([two_of_five, image, image], DocumentLimits(max_pages=3))
    assert caught.value.message == ("the documents have 4 pages; the limit is 3 pages per request (OCRSERVE_MAX_PAGES)")


PAYLOAD = bytes(range(256)) * 3 + b"\xfb"  # 769 bytes: base64 needs padding


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(PAYLOAD).decode(),
        "data:application/pdf;base64," + base64.b64encode(PAYLOAD).decode(),
        "DATA:image/png;BASE64," + base64.b64encode(PAYLOAD).decode(),
        "data:;base64," + base64.b64encode(PAYLOAD).decode(),
        "  " + base64.encodebytes(PAYLOAD).decode() + "\n",  # MIME-style line breaks
        base64.urlsafe_b64encode(PAYLOAD).decode(),
        base64.urlsafe_b64encode(PAYLOAD).decode().rstrip("="),
        base64.b64encode(PAYLOAD).decode().rstrip("="),
    ],
)
def test_decodes_base64_and_data_urls(value: str) -> None:
    assert decode_base64_payload(value, param="file_data") == PAYLOAD


def test_payload_fixture_exercises_padding_and_urlsafe_alphabet() -> None:
    standard = base64.b64encode(PAYLOAD).decode()
    assert standard.endswith("==")
    assert "+" in standard
    assert "/" in standard


def test_decodes_percent_encoded_data_urls() -> None:
    assert decode_base64_payload("data:text/plain,hello%20world%00", param="url") == b"hello world\x00"
    assert decode_base64_payload("data:text/plain;charset=utf-8,%25PDF-", param="url") == b"%PDF-"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!!", "file_data is not valid base64"),
        ("data:image/png;base64,@@@@", "file_data is not valid base64"),
        ("QUJD$", "file_data is not valid base64"),
        ("QUJDR", "file_data is not valid base64"),  # a length no padding can fix
        ("€uro", "file_data is not valid base64"),
        ("", "file_data is empty"),
        ("data:image/png;base64,", "file_data is empty"),
        ("data:image/png;base64", "file_data is not a valid data URL"),
    ],
)
def test_bad_payloads_name_the_param(value: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_base64_payload(value, param="file_data")
    assert caught.value.message.startswith(message)
    assert caught.value.param == "file_data"


def test_data_url_round_trip_into_load_document() -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert load_document(decode_base64_payload(url, param="image_url"), limits=LIMITS).kind == "image"

"""sniff_kind: the type comes from the bytes, never from a name or a claimed MIME type."""

from __future__ import annotations

import io

import pymupdf
import pytest
from PIL import Image

from ocr_engine.documents import sniff_kind
from ocr_engine.errors import InvalidInput, UnsupportedDocument


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format=fmt)
    return buffer.getvalue()


def _pdf_bytes() -> bytes:
    document = pymupdf.open()
    document.new_page()
    return document.tobytes()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_images_made_by_pillow_are_images(fmt: str) -> None:
    assert sniff_kind(_image_bytes(fmt)) == "image"


def test_big_endian_tiff_signature_is_an_image() -> None:
    assert sniff_kind(b"MM\x00*" + bytes(16)) == "image"


def test_pdf_is_pdf() -> None:
    assert sniff_kind(_pdf_bytes()) == "pdf"


def test_pdf_header_after_a_few_junk_bytes_is_pdf() -> None:
    assert sniff_kind(b"\x00\r\nJUNK\n" + _pdf_bytes()) == "pdf"


def test_pdf_header_far_into_the_file_is_not_a_pdf() -> None:
    with pytest.raises(UnsupportedDocument):
        sniff_kind(b"x" * 4096 + _pdf_bytes())


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is plain text",
        b"<html><body>not a document</body></html>",
        b"PK\x03\x04zip archive",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio rather than WEBP
    ],
)
def test_other_bytes_are_unsupported_and_the_message_names_supported_types(data: bytes) -> None:
    with pytest.raises(UnsupportedDocument) as caught:
        sniff_kind(data)
    assert "PDF" in caught.value.message
    assert "PNG" in caught.value.message
    assert "TIFF" in caught.value.message


def test_empty_data_is_invalid_input_not_unsupported() -> None:
    with pytest.raises(InvalidInput) as caught:
        sniff_kind(b"")
    assert type(caught.value) is InvalidInput
    assert "empty" in caught.value.message

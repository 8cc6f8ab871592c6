"""Tell PDFs from images by their magic bytes: a claimed MIME type is never trusted."""

from __future__ import annotations

from ocr_engine.errors import InvalidInput, UnsupportedDocument
from ocr_engine.request import DocumentKind

_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
_PDF_MAGIC = b"%PDF-"
_PDF_HEADER_WINDOW = 1024  # readers accept a few junk bytes before the header, as Acrobat does

SUPPORTED_TYPES = "PDF, PNG, JPEG, GIF, WEBP, BMP or TIFF"


def sniff_kind(data: bytes) -> DocumentKind:
    """Return "pdf" or "image"; raise UnsupportedDocument for anything else."""
    if not data:
        raise InvalidInput("the document is empty")
    if data.startswith(_PDF_MAGIC):
        return "pdf"
    if data.startswith(_IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return "image"
    if _PDF_MAGIC in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    raise UnsupportedDocument(f"unsupported document type: send a {SUPPORTED_TYPES} file")

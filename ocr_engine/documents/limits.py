"""Resource limits for documents. Every error names the limit and the OCRSERVE_* setting that raises it."""

from __future__ import annotations

import msgspec

from ocr_engine.errors import InvalidInput, LimitExceeded


def document_too_large(limit: int, size: int | None = None) -> LimitExceeded:
    """The error for a document over `limit` bytes; `size` is None when a stream was cut off early."""
    actual = f"is {size:,} bytes" if size is not None else f"is larger than {limit:,} bytes"
    return LimitExceeded(
        f"the document {actual}; the limit is {limit:,} bytes per document (OCRSERVE_MAX_DOCUMENT_BYTES)"
    )


class DocumentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How much one request may make the service read and rasterize, so one client cannot exhaust a worker."""

    max_bytes: int = 50 * 1024 * 1024  # per document
    max_pages: int = 500  # per request, all documents together
    max_pixels: int = 40_000_000  # per page raster or decoded image
    max_dpi: int = 300

    def check_bytes(self, size: int) -> None:
        if size > self.max_bytes:
            raise document_too_large(self.max_bytes, size)

    def check_pages(self, count: int, subject: str) -> None:
        """`subject` starts the message, e.g. "PDF has" → "PDF has 812 pages; the limit is …"."""
        if count > self.max_pages:
            raise LimitExceeded(
                f"{subject} {count} pages; the limit is {self.max_pages} pages per request (OCRSERVE_MAX_PAGES)",
                param="pages",
            )

    def check_pixels(self, width: int, height: int, subject: str, hint: str = "") -> None:
        """`subject` names what is measured (e.g. "image", "PDF page 3 at 300 dpi"); `hint` what to change."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise LimitExceeded(
                f"{subject} is {width}x{height} = {pixels:,} pixels; the limit is {self.max_pixels:,} pixels"
                f" per page (OCRSERVE_MAX_PIXELS){hint}"
            )

    def check_dpi(self, dpi: int) -> None:
        if dpi <= 0:
            raise InvalidInput(f"dpi must be positive, got {dpi}", param="dpi")
        if dpi > self.max_dpi:
            raise LimitExceeded(f"dpi {dpi} is above the limit of {self.max_dpi} (OCRSERVE_MAX_DPI)", param="dpi")

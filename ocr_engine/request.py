"""What one OCR job asks of the engine. Plain msgspec Structs so a job can cross a queue unchanged."""

from __future__ import annotations

from typing import Literal

import msgspec

DocumentKind = Literal["pdf", "image"]
OutputFormat = Literal["markdown", "raw", "layout"]

DEFAULT_PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """Decoding settings; `temperature == 0` means greedy. `max_tokens` is per page (None: up to the model's length)."""

    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved input document: raw bytes whose kind was sniffed from the bytes, and the pages to read."""

    data: bytes
    kind: DocumentKind
    name: str = ""
    page_count: int = 1
    pages: tuple[int, ...] | None = None  # 0-based selection; None = every page

    @property
    def selected_pages(self) -> tuple[int, ...]:
        return self.pages if self.pages is not None else tuple(range(self.page_count))


class OcrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One job: documents (possibly none, for text-only chat), the instruction, and how to decode and format."""

    prompt: str
    documents: tuple[Document, ...] = ()
    sampling: SamplingParams = SamplingParams()
    output_format: OutputFormat = "markdown"
    mode: str | None = None  # resolution mode (ocr_engine.modes); None = the model family's default
    dpi: int = 144
    page_separator: str = DEFAULT_PAGE_SEPARATOR

    @property
    def page_total(self) -> int:
        return sum(len(d.selected_pages) for d in self.documents)

"""The `layout` output format: one JSON line per page with its grounded blocks placed in page pixels.

A page's line can only be written once the page is complete (a box is known only after its det tag closes,
a block's text only once the next ref starts), so `LayoutFormatter` buffers the raw text and renders it at
`finish()`: streamed replies get each page's whole line as one delta.
"""

from __future__ import annotations

import msgspec

from ocr_engine.confidence import TokenTrace
from ocr_engine.grounding import Box, clean_markdown, grounded_blocks, text_spans, to_pixels
from ocr_engine.results import Confidence

PageSize = tuple[int, int]


class LayoutBlock(msgspec.Struct):
    """One located region: a ref with several boxes gives one block per box, each with the ref's text."""

    label: str
    box: Box  # page pixels
    text: str
    confidence: Confidence | None = None  # over the block's text (None: it has none, or no tokens were traced)


class LayoutPage(msgspec.Struct):
    """One JSON line. `text` is the whole page's clean Markdown, so nothing is lost when blocks are empty."""

    page: int
    width: int | None
    height: int | None
    blocks: list[LayoutBlock]
    text: str
    confidence: Confidence | None = None  # over the page's text


def layout_blocks(raw: str, size: PageSize | None, trace: TokenTrace | None = None) -> list[LayoutBlock]:
    """The blocks of a raw page, boxes in pixels, each with its confidence when `trace` has the page's tokens;
    none without a page image (nothing to place them on)."""
    if size is None:
        return []
    return [
        LayoutBlock(
            label=block.label,
            box=to_pixels(box, *size),
            text=block.text,
            confidence=trace.confidence([span]) if trace else None,
        )
        for block, span in grounded_blocks(raw)
        for box in block.boxes
    ]


def render_page(number: int, raw: str, size: PageSize | None, trace: TokenTrace | None = None) -> str:
    """The JSON line (with its newline) of page `number` (1-based)."""
    width, height = size or (None, None)
    page = LayoutPage(
        page=number,
        width=width,
        height=height,
        blocks=layout_blocks(raw, size, trace),
        text=clean_markdown(raw),
        confidence=trace.confidence(text_spans(raw)) if trace else None,
    )
    return msgspec.json.encode(page).decode() + "\n"


class LayoutFormatter:
    """The pipeline's per-page formatter for `layout`: emits nothing while the page runs, its line at the end
    (with the confidences `trace` gives once the page's tokens are all in)."""

    def __init__(self, number: int, size: PageSize | None, trace: TokenTrace | None = None) -> None:
        self.number = number
        self.size = size
        self.trace = trace
        self._raw: list[str] = []

    def feed(self, raw: str) -> str:
        self._raw.append(raw)
        return ""

    def finish(self) -> str:
        return render_page(self.number, "".join(self._raw), self.size, self.trace)

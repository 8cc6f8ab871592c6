"""The `layout` output format: one JSON line per page with its grounded blocks placed in page pixels.

A page's line can only be written once the page is complete (a box is known only after its det tag closes,
a block's text only once the next ref starts), so `LayoutFormatter` buffers the raw text and renders it at
`finish()`: streamed replies get each page's whole line as one delta.
"""

from __future__ import annotations

import msgspec

from ocr_engine.grounding import Box, clean_markdown, parse_grounding, to_pixels

PageSize = tuple[int, int]


class LayoutBlock(msgspec.Struct):
    """One located region: a ref with several boxes gives one block per box, each with the ref's text."""

    label: str
    box: Box  # page pixels
    text: str


class LayoutPage(msgspec.Struct):
    """One JSON line. `text` is the whole page's clean Markdown, so nothing is lost when blocks are empty."""

    page: int
    width: int | None
    height: int | None
    blocks: list[LayoutBlock]
    text: str


def layout_blocks(raw: str, size: PageSize | None) -> list[LayoutBlock]:
    """The blocks of a raw page, boxes in pixels; none without a page image (nothing to place them on)."""
    if size is None:
        return []
    return [
        LayoutBlock(label=block.label, box=to_pixels(box, *size), text=block.text)
        for block in parse_grounding(raw)
        for box in block.boxes
    ]


def render_page(number: int, raw: str, size: PageSize | None) -> str:
    """The JSON line (with its newline) of page `number` (1-based)."""
    width, height = size or (None, None)
    page = LayoutPage(
        page=number, width=width, height=height, blocks=layout_blocks(raw, size), text=clean_markdown(raw)
    )
    return msgspec.json.encode(page).decode() + "\n"


class LayoutFormatter:
    """The pipeline's per-page formatter for `layout`: emits nothing while the page runs, its line at the end."""

    def __init__(self, number: int, size: PageSize | None) -> None:
        self.number = number
        self.size = size
        self._raw: list[str] = []

    def feed(self, raw: str) -> str:
        self._raw.append(raw)
        return ""

    def finish(self) -> str:
        return render_page(self.number, "".join(self._raw), self.size)

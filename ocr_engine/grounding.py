"""DeepSeek-OCR grounding output: `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], …]<|/det|>` then text.

Boxes are bins 0..999 relative to the page. `parse_grounding` turns raw output into blocks for structured
replies; `MarkdownStreamCleaner` / `clean_markdown` drop the tags so the default reply is plain Markdown,
with the same result whether the text arrives whole or as stream deltas.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

REF_OPEN, REF_CLOSE = "<|ref|>", "<|/ref|>"
DET_OPEN, DET_CLOSE = "<|det|>", "<|/det|>"
GROUNDING = "<|grounding|>"

MAX_BIN = 999

_OPENERS = (REF_OPEN, DET_OPEN)
_CLOSERS = (REF_CLOSE, DET_CLOSE)
_TAGS = (*_OPENERS, *_CLOSERS, GROUNDING)
_TAG_RE = re.compile("|".join(re.escape(t) for t in _TAGS))
# Every proper prefix of a tag: a buffer ending in one of these may still become a tag.
_TAG_PREFIXES = frozenset(t[:i] for t in _TAGS for i in range(1, len(t)))
_LONGEST_TAG = max(len(t) for t in _TAGS)

# A block after its `<|ref|>`: the label (closed by `<|/ref|>`, or cut short by `<|det|>` or the end), an
# optional det span (closed or running to the end), and the text that follows.
_BLOCK_RE = re.compile(
    r"(?P<label>.*?)(?:<\|/ref\|>|(?=<\|det\|>)|\Z)\s*"
    r"(?:<\|det\|>(?P<det>.*?)(?:<\|/det\|>|\Z))?(?P<text>.*)",
    re.DOTALL,
)
_BOX_RE = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")


class Box(NamedTuple):
    """A rectangle (left, top, right, bottom): in bins 0..999 or in pixels, depending on its source."""

    x1: int
    y1: int
    x2: int
    y2: int


class GroundedBlock(msgspec.Struct):
    """One layout block: its label (title, text, table, image…), its boxes in bins and its clean text."""

    label: str
    boxes: list[Box]
    text: str


def _parse_boxes(det: str) -> list[Box]:
    """Boxes of a det span; anything that is not four in-range, ordered integers is skipped."""
    boxes = []
    for match in _BOX_RE.finditer(det):
        box = Box(*(int(v) for v in match.groups()))
        if max(box) <= MAX_BIN and box.x1 <= box.x2 and box.y1 <= box.y2:
            boxes.append(box)
    return boxes


def _block_matches(raw: str) -> list[re.Match[str]]:
    """Each `<|ref|>` block of `raw` matched against `_BLOCK_RE` in place (its spans are offsets in `raw`)."""
    matches = []
    start = raw.find(REF_OPEN)
    while start >= 0:
        begin = start + len(REF_OPEN)
        start = raw.find(REF_OPEN, begin)
        match = _BLOCK_RE.match(raw, begin, start if start >= 0 else len(raw))
        assert match is not None  # every part of the pattern may match empty
        matches.append(match)
    return matches


Span = tuple[int, int]


def grounded_blocks(raw: str) -> list[tuple[GroundedBlock, Span]]:
    """One block per `<|ref|>`, in order, with where its text lies in `raw` (start, end); text before the first
    `<|ref|>` is in no block. Never raises."""
    return [
        (
            GroundedBlock(
                label=clean_markdown(match["label"]),
                boxes=_parse_boxes(match["det"] or ""),
                text=clean_markdown(match["text"]),
            ),
            match.span("text"),
        )
        for match in _block_matches(raw)
    ]


def parse_grounding(raw: str) -> list[GroundedBlock]:
    return [block for block, _ in grounded_blocks(raw)]


def text_spans(raw: str) -> list[Span]:
    """The parts of `raw` that are text rather than grounding (tags, labels, boxes): what precedes the first
    `<|ref|>`, then each block's text."""
    first = raw.find(REF_OPEN)
    return [(0, len(raw) if first < 0 else first), *(match.span("text") for match in _block_matches(raw))]


def to_pixels(box: tuple[int, int, int, int], width: int, height: int) -> Box:
    """Map a 0..999 bin box onto a `width` x `height` page the way DeepSeek does (v * size / 999), clamped."""
    x1, y1, x2, y2 = box

    def scale(v: int, size: int) -> int:
        return min(max(int(v * size / MAX_BIN), 0), size)

    return Box(scale(x1, width), scale(y1, height), scale(x2, width), scale(y2, height))


def _partial_tag_length(text: str) -> int:
    """Length of the longest suffix of `text` that could still grow into a tag."""
    for n in range(min(len(text), _LONGEST_TAG - 1), 0, -1):
        if text[-n:] in _TAG_PREFIXES:
            return n
    return 0


class MarkdownStreamCleaner:
    """Turns raw model text into clean Markdown delta by delta.

    Drops `<|ref|>…<|/ref|>` and `<|det|>…<|/det|>` spans (an opening tag starts a dropped span, a closing tag
    ends it; an unclosed span at the end is dropped) and `<|grounding|>`; everything else is kept. The page is
    stripped: leading whitespace is never emitted, trailing whitespace is held until text follows it. Text
    is otherwise held back only while it may be the start of a tag, so any split of the input gives the same
    output.
    """

    def __init__(self) -> None:
        self._pending = ""  # raw text not yet looked at for tags (at most a partial tag between calls)
        self._in_span = False
        self._started = False  # has any non-whitespace text been emitted?
        self._whitespace = ""  # emitted-side trailing whitespace, released once more text follows

    def feed(self, delta: str) -> str:
        """Take the next raw delta; return the clean text that is now certain."""
        text = self._pending + delta
        out: list[str] = []
        pos = 0
        for match in _TAG_RE.finditer(text):
            if not self._in_span:
                out.append(text[pos : match.start()])
            tag = match.group()
            if tag in _OPENERS:
                self._in_span = True
            elif tag in _CLOSERS:
                self._in_span = False
            pos = match.end()
        rest = text[pos:]
        held = _partial_tag_length(rest)
        self._pending = rest[len(rest) - held :]
        if not self._in_span:
            out.append(rest[: len(rest) - held])
        return self._emit("".join(out))

    def finish(self) -> str:
        """End of the page: release held text (not trailing whitespace, not an unclosed span)."""
        tail = "" if self._in_span else self._pending
        self._pending = ""
        self._in_span = False
        return self._emit(tail)

    def _emit(self, text: str) -> str:
        """Apply the page strip: drop leading whitespace, hold trailing whitespace."""
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        body = text.rstrip()
        if not body:
            self._whitespace += text
            return ""
        out = self._whitespace + body
        self._whitespace = text[len(body) :]
        return out


def clean_markdown(raw: str) -> str:
    """The Markdown of a whole raw page: the stream cleaner fed the page in one piece."""
    cleaner = MarkdownStreamCleaner()
    return cleaner.feed(raw) + cleaner.finish()

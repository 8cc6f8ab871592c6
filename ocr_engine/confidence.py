"""OCR confidence: how probable the model found the text it wrote, for a page and for each of its layout blocks.

Each generated token of a page is recorded with its log probability and the span of the page's raw text it
wrote. A part of the page (the whole page's text, or one block's) is scored over the tokens whose text lies in
it, so grounding tags, block labels and box coordinates never count: `Confidence.mean` is the mean of those
tokens' probabilities and `Confidence.min` the smallest one. A token that wrote no text of its own (the first
byte of a character split over two tokens) counts with the character that follows it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from ocr_engine.grounding import Span
from ocr_engine.results import Confidence


class TokenTrace:
    """A page's tokens in order: each one's log probability and where its text starts and ends in the raw text."""

    def __init__(self) -> None:
        self.logprobs: list[float] = []
        self._starts: list[int] = []
        self._ends: list[int] = []  # never below start + 1, so every token covers a character
        self._length = 0

    def add(self, logprob: float, text: str) -> None:
        start, self._length = self._length, self._length + len(text)
        self.logprobs.append(logprob)
        self._starts.append(start)
        self._ends.append(max(self._length, start + 1))

    def extend_last(self, text: str) -> None:
        """Text released after the last token (a held-back character at the page's end) is that token's."""
        self._length += len(text)
        if self._ends:
            self._ends[-1] = max(self._ends[-1], self._length)

    def tokens_in(self, spans: Iterable[Span]) -> list[int]:
        """Indices of the tokens whose text overlaps one of `spans`, in order."""
        chosen: set[int] = set()
        for start, end in spans:
            if start < end:
                chosen.update(range(bisect_right(self._ends, start), bisect_left(self._starts, end)))
        return sorted(chosen)

    def confidence(self, spans: Iterable[Span]) -> Confidence | None:
        """The confidence over the tokens of `spans`; None when no token wrote text there."""
        probabilities = [math.exp(self.logprobs[index]) for index in self.tokens_in(spans)]
        if not probabilities:
            return None
        return Confidence(
            mean=sum(probabilities) / len(probabilities), min=min(probabilities), tokens=len(probabilities)
        )

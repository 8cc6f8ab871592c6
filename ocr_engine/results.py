"""What the engine returns: per-page results and the joined document text."""

from __future__ import annotations

from typing import Literal

import msgspec

FinishReason = Literal["stop", "length"]


class Usage(msgspec.Struct, kw_only=True):
    """Token counts; image placeholder tokens count as prompt tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


class PageResult(msgspec.Struct, kw_only=True):
    """One page (or the single text-only answer): the formatted text, the raw model text and why it stopped.

    `width` x `height` is the page image the model was given, before its own resizing: what grounding boxes
    (0..999 bins) scale to. None for a text-only answer.
    """

    index: int
    text: str
    raw_text: str
    finish_reason: FinishReason
    usage: Usage
    width: int | None = None
    height: int | None = None


class OcrResult(msgspec.Struct, kw_only=True):
    """The whole job: pages in order, their texts joined by the request's separator."""

    text: str
    pages: list[PageResult]
    usage: Usage
    finish_reason: FinishReason

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


class TokenLogprob(msgspec.Struct, frozen=True, array_like=True):
    """A generated token and its log probability under the model (log-softmax of its raw logits, before
    penalties, biases and the repetition guard); `top` holds the most likely alternatives, when asked for, and
    `offset` where the token's text starts in its page's raw text (-1 until the job's pipeline has placed it)."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()
    offset: int = -1


class Confidence(msgspec.Struct, frozen=True, kw_only=True):
    """How sure the model was of the text it wrote: the mean and the minimum probability over the tokens of the
    text (grounding tags, labels and boxes excluded), and how many tokens that is."""

    mean: float
    min: float
    tokens: int


class PageResult(msgspec.Struct, kw_only=True):
    """One page (or the single text-only answer): the formatted text, the raw model text, why it stopped and how
    confident the model was.

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
    confidence: Confidence | None = None  # None: the page wrote no text
    logprobs: list[TokenLogprob] | None = None  # only when the request asks for them


class OcrResult(msgspec.Struct, kw_only=True):
    """The whole job: pages in order, their texts joined by the request's separator."""

    text: str
    pages: list[PageResult]
    usage: Usage
    finish_reason: FinishReason

"""Pieces shared by several resources."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ocr_engine.documents import PAGE_SELECTION_PATTERN
from ocr_engine.results import Usage


class UsageInfo(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> UsageInfo:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


# documented as a pattern, checked by the page parser, whose message says what a selection looks like
PageSelection = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": PAGE_SELECTION_PATTERN})]


class OcrOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """ocrserve's extension field `ocr` (send it through the openai SDK with `extra_body={"ocr": {...}}`)."""

    preset: str | None = None
    mode: str | None = None
    output_format: Literal["markdown", "raw", "layout"] = "markdown"
    dpi: Annotated[int, msgspec.Meta(ge=1)] | None = None
    pages: PageSelection | Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(min_length=1)] | None = None
    page_separator: str | None = None


# The sampling fields' ranges, as OpenAI documents them; the decoder enforces them and the OpenAPI document shows them.
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)] | None
TopP = Annotated[float, msgspec.Meta(gt=0, le=1)] | None
MaxTokens = Annotated[int, msgspec.Meta(ge=1)] | None  # and at most the model's length: checked per request
# documented as 1..1 and checked in app.serving.jobs, whose 400 says that only 1 is supported
Choices = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": 1})] | None
Stop = str | Annotated[list[str], msgspec.Meta(max_length=4)] | None
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)] | None
TopLogprobs = Annotated[int, msgspec.Meta(ge=0, le=20)] | None


Off = Annotated[list[Any], msgspec.Meta(max_length=0)] | None
"""A list-valued OpenAI field this server does not do (`tools`…): only its off values, empty or null, decode."""
UNSUPPORTED_FIELDS = frozenset(
    {
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "audio",
        "modalities",
        "prediction",
        "response_format",
        "web_search_options",
        "best_of",
        "suffix",
        "text",
    }
)
"""OpenAI request fields typed to their off values: a client that sets one gets a 400 that says it is not
supported (see app.errors), instead of the field being ignored."""


class ScoreAdjustments(msgspec.Struct, kw_only=True):
    """OpenAI's penalties and `logit_bias`, and vLLM's extensions (`repetition_penalty`, `min_tokens`,
    `ignore_eos`): fields of chat, completions and responses requests alike. `logit_bias` maps token ids, as
    strings, to -100..100."""

    frequency_penalty: Penalty = None
    presence_penalty: Penalty = None
    repetition_penalty: Annotated[float, msgspec.Meta(gt=0)] | None = None
    logit_bias: dict[str, Annotated[float, msgspec.Meta(ge=-100, le=100)]] | None = None
    min_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ignore_eos: bool = False


def stop_sequences(stop: Stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


class TopLogprob(msgspec.Struct, kw_only=True):
    """A token and its log probability (OpenAI's shape): `bytes` are its UTF-8 bytes, which join across tokens
    that split a character."""

    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob, kw_only=True):
    """A generated token with the most likely tokens at its position: the entries of chat's `logprobs.content`
    and of the Responses API's `logprobs` alike."""

    top_logprobs: list[TopLogprob]


class PageConfidence(msgspec.Struct, kw_only=True):
    """The mean and the lowest probability of the tokens of a page's text (grounding tags, labels and boxes not
    counted), and how many tokens that is."""

    mean: float
    min: float
    tokens: int


class OcrPage(msgspec.Struct, kw_only=True):
    """ocrserve's extension (`ocr_pages`): one entry per page read, in order. `page` counts from 1 across the
    request's documents; `confidence` is null for a page that wrote no text."""

    page: int
    finish_reason: str
    confidence: PageConfidence | None

"""/v1/completions: a plain text prompt answered by the decoder."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.protocol.common import (
    Choices,
    MaxTokens,
    ScoreAdjustments,
    Stop,
    StreamOptions,
    Temperature,
    TopLogprobs,
    TopP,
    UsageInfo,
)

TokenId = Annotated[int, msgspec.Meta(ge=0)]
TokenIds = Annotated[list[TokenId], msgspec.Meta(min_length=1)]


class CompletionRequest(ScoreAdjustments, kw_only=True):
    model: str
    # text, token ids, or a list of one text or one list of ids (app.serving.completions checks the form)
    prompt: str | Annotated[list[str | TokenId | TokenIds], msgspec.Meta(min_length=1)]
    max_tokens: MaxTokens = 16
    temperature: Temperature = None
    top_p: TopP = None
    stop: Stop = None
    seed: int | None = None
    n: Choices = None
    echo: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    # OpenAI fields this server does not do: only their off values decode (common.UNSUPPORTED_FIELDS)
    logprobs: TopLogprobs = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    suffix: None = None


class CompletionLogprobs(msgspec.Struct, kw_only=True):
    """The legacy shape: per token its text, log probability, the most likely tokens at its position (the
    chosen one among them) and where its text starts in the choice's text."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class Completion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    object: str = "text_completion"

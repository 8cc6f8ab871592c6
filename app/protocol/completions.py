"""/v1/completions: a plain text prompt answered by the decoder."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.protocol.common import Choices, MaxTokens, ScoreAdjustments, Stop, StreamOptions, Temperature, TopP, UsageInfo


class CompletionRequest(ScoreAdjustments, kw_only=True):
    model: str
    prompt: str | list[str]
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
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=0)] | None = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None
    suffix: None = None


class CompletionChoice(msgspec.Struct, kw_only=True):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    object: str = "text_completion"

"""/tokenize and /detokenize in vLLM's shapes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.protocol.chat import ChatMessage


class TokenizeRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool = True


class TokenizeResponse(msgspec.Struct, kw_only=True):
    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(msgspec.Struct, kw_only=True):
    tokens: list[Annotated[int, msgspec.Meta(ge=0)]]  # and below the vocabulary's size: checked per request
    model: str | None = None


class DetokenizeResponse(msgspec.Struct, kw_only=True):
    prompt: str

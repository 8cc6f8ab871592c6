"""/v1/chat/completions: OpenAI chat messages whose content mixes text, images and files."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from app.protocol.common import (
    Choices,
    MaxTokens,
    OcrOptions,
    OcrPage,
    Off,
    ScoreAdjustments,
    Stop,
    StreamOptions,
    Temperature,
    TokenLogprob,
    TopLogprobs,
    TopP,
    UsageInfo,
)


class TextPart(msgspec.Struct, tag_field="type", tag="text", kw_only=True):
    text: str


class ImageUrl(msgspec.Struct, kw_only=True):
    url: str
    detail: str | None = None


class ImageUrlPart(msgspec.Struct, tag_field="type", tag="image_url", kw_only=True):
    image_url: ImageUrl


class FileData(msgspec.Struct, kw_only=True):
    file_data: str | None = None
    filename: str | None = None
    file_id: str | None = None


class FilePart(msgspec.Struct, tag_field="type", tag="file", kw_only=True):
    file: FileData


ContentPart = TextPart | ImageUrlPart | FilePart


class ChatMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class TextResponseFormat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["text"]


class ChatCompletionRequest(ScoreAdjustments, kw_only=True):
    model: str
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    max_tokens: MaxTokens = None
    max_completion_tokens: MaxTokens = None
    temperature: Temperature = None
    top_p: TopP = None
    stop: Stop = None
    seed: int | None = None
    n: Choices = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ocr: OcrOptions | None = None
    # OpenAI fields this server does not do: only their off values decode (common.UNSUPPORTED_FIELDS)
    tools: Off = None
    functions: Off = None
    tool_choice: Literal["none"] | None = None
    function_call: Literal["none"] | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs = None
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    prediction: None = None
    response_format: TextResponseFormat | None = None
    web_search_options: None = None


class AssistantMessage(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None = None


class ChoiceLogprobs(msgspec.Struct, kw_only=True):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


class Choice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: UsageInfo
    ocr_pages: list[OcrPage]
    object: str = "chat.completion"


class Delta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    ocr_pages: list[OcrPage] | msgspec.UnsetType = msgspec.UNSET  # on the chunk with the finish reason
    object: str = "chat.completion.chunk"

"""/v1/responses: the OpenAI Responses API, as the openai SDK's `types/responses` models describe it.

Request content parts are one permissive Struct checked in `__post_init__`, so an unsupported part type is a
400 that names the supported ones (a tagged union would only say "invalid value").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from app.protocol.common import (
    MaxTokens,
    OcrOptions,
    OcrPage,
    ScoreAdjustments,
    Temperature,
    TokenLogprob,
    TopLogprobs,
    TopP,
)

# ---------------------------------------------------------------- request

INPUT_PART_TYPES = ("input_text", "input_image", "input_file", "output_text")


class InputPart(msgspec.Struct, kw_only=True):
    """`input_text` {text}, `input_image` {image_url, detail}, `input_file` {file_data, filename}; `output_text`
    (an earlier assistant turn) reads as text."""

    type: str
    text: str | None = None
    image_url: str | None = None
    detail: str | None = None
    file_data: str | None = None
    filename: str | None = None
    file_id: str | None = None
    file_url: str | None = None

    def __post_init__(self) -> None:
        if self.type not in INPUT_PART_TYPES:
            raise ValueError(f"unsupported content part type {self.type!r}; supported: {', '.join(INPUT_PART_TYPES)}")
        if self.type in ("input_text", "output_text") and self.text is None:
            raise ValueError(f"a `{self.type}` part needs `text`")
        if self.type == "input_image" and not self.image_url:
            raise ValueError(
                "an `input_image` part needs `image_url` (a data URL or an http(s) URL); file_id is not supported"
            )
        if self.type == "input_file" and not self.file_data:
            raise ValueError(
                "an `input_file` part needs `file_data` (base64 or a data URL); file_id and file_url are not supported"
            )


class InputMessage(msgspec.Struct, kw_only=True):
    """A message item: `{"role", "content"}` or `{"type": "message", "role", "content"}`."""

    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputPart]
    type: Literal["message"] = "message"


class TextFormat(msgspec.Struct, kw_only=True):
    """Plain text: the only output format (a JSON schema would need constrained decoding)."""

    type: Literal["text"] = "text"


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat = msgspec.field(default_factory=TextFormat)


# OpenAI's limits: 16 pairs, keys of 64 characters, values of 512
Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=512)]],
    msgspec.Meta(max_length=16),
]


class ResponseCreateRequest(ScoreAdjustments, kw_only=True):
    model: str
    input: str | Annotated[list[InputMessage], msgspec.Meta(min_length=1)]
    instructions: str | None = None
    max_output_tokens: MaxTokens = None
    temperature: Temperature = None
    top_p: TopP = None
    metadata: Metadata | None = None
    background: bool = False
    store: bool = True
    stream: bool = False
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    include: list[str] | None = None
    top_logprobs: TopLogprobs = None
    ocr: OcrOptions | None = None
    # OpenAI fields this server does not do: `text` and `tool_choice` decode only at their off values
    # (common.UNSUPPORTED_FIELDS); `prompt` and `conversation` are refused by app.serving.responses
    text: TextConfig | None = None
    tool_choice: Literal["none"] | None = None
    prompt: dict[str, Any] | None = None
    conversation: str | dict[str, Any] | None = None


# ---------------------------------------------------------------- the response object

ResponseStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]


class OutputText(msgspec.Struct, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)
    logprobs: list[TokenLogprob] = msgspec.field(default_factory=list)


ItemStatus = Literal["in_progress", "completed", "incomplete"]


class OutputMessage(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: ItemStatus
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class ResponseError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: Literal["max_output_tokens", "content_filter"]


class OcrProgress(msgspec.Struct, kw_only=True):
    """ocrserve's extension: pages of the job finished so far, out of all its pages."""

    pages_done: int
    pages_total: int


class ResponseObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    model: str
    output: list[OutputMessage]
    usage: ResponseUsage | None
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    metadata: dict[str, str]
    background: bool
    store: bool
    max_output_tokens: int | None
    temperature: float
    top_p: float
    top_logprobs: int | None
    ocr_progress: OcrProgress
    ocr_pages: list[OcrPage]  # once the pages are read
    parallel_tool_calls: bool = False
    tool_choice: Literal["none"] = "none"
    tools: list[Any] = msgspec.field(default_factory=list)
    text: TextConfig = msgspec.field(default_factory=TextConfig)
    truncation: Literal["disabled"] = "disabled"
    previous_response_id: None = None


class ResponseDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


# ---------------------------------------------------------------- stream events


class StreamEvent(msgspec.Struct, kw_only=True, tag_field="type"):
    """Base of the SSE events; `sequence_number` counts from 0 within one response."""

    sequence_number: int


class ResponseCreated(StreamEvent, tag="response.created"):
    response: ResponseObject


class ResponseInProgress(StreamEvent, tag="response.in_progress"):
    response: ResponseObject


class ResponseCompleted(StreamEvent, tag="response.completed"):
    response: ResponseObject


class ResponseIncomplete(StreamEvent, tag="response.incomplete"):
    """Also ends a cancelled response (the SDK has no `response.cancelled` event): `response.status` says which."""

    response: ResponseObject


class ResponseFailed(StreamEvent, tag="response.failed"):
    response: ResponseObject


class OutputItemAdded(StreamEvent, tag="response.output_item.added"):
    output_index: int
    item: OutputMessage


class OutputItemDone(StreamEvent, tag="response.output_item.done"):
    output_index: int
    item: OutputMessage


class ContentPartAdded(StreamEvent, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class ContentPartDone(StreamEvent, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class OutputTextDelta(StreamEvent, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[TokenLogprob] = msgspec.field(default_factory=list)


class OutputTextDone(StreamEvent, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[TokenLogprob] = msgspec.field(default_factory=list)

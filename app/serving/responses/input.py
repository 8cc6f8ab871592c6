"""A Responses API request as an OCR job: its input turned into the chat messages chat builds its jobs from, and
the fields it keeps in the job's record to rebuild the response object later (`meta`)."""

from __future__ import annotations

from app.admission.guard import AdmissionTicket
from app.context import AppContext
from app.errors import ApiError
from app.protocol.chat import ChatMessage, ContentPart, FileData, FilePart, ImageUrl, ImageUrlPart, TextPart
from app.protocol.responses import InputMessage, InputPart, ResponseCreateRequest
from app.serving import jobs
from workers.jobs import JobRecord

LOGPROBS = "message.output_text.logprobs"  # the one `include` value this server has anything for


def _chat_part(part: InputPart) -> ContentPart:
    if part.type == "input_image":
        return ImageUrlPart(image_url=ImageUrl(url=part.image_url or "", detail=part.detail))
    if part.type == "input_file":
        return FilePart(file=FileData(file_data=part.file_data, filename=part.filename))
    return TextPart(text=part.text or "")


def _chat_message(item: InputMessage) -> ChatMessage:
    content = item.content if isinstance(item.content, str) else [_chat_part(p) for p in item.content]
    return ChatMessage(role=item.role, content=content)


def _check(body: ResponseCreateRequest) -> None:
    if body.previous_response_id is not None:
        raise ApiError(
            400, "previous_response_id is not supported", code="unsupported_parameter", param="previous_response_id"
        )
    if body.tools:
        raise ApiError(400, "tools are not supported", code="unsupported_parameter", param="tools")
    for name, value in (("prompt", body.prompt), ("conversation", body.conversation)):
        if value is not None:
            raise ApiError(400, f"`{name}` is not supported by this server", code="unsupported_parameter", param=name)
    if body.background and not body.store:
        raise ApiError(400, "a background response must be stored: send store=true", param="store")
    if unknown := [value for value in body.include or () if value != LOGPROBS]:
        raise ApiError(
            400,
            f"include {', '.join(map(repr, unknown))} is not supported; only {LOGPROBS!r} is",
            code="unsupported_value",
            param="include",
        )


def _logprobs(body: ResponseCreateRequest) -> int | None:
    """Log probabilities come with `include: ["message.output_text.logprobs"]`, or with `top_logprobs`."""
    if LOGPROBS in (body.include or ()) or body.top_logprobs is not None:
        return body.top_logprobs or 0
    return None


async def submit(ctx: AppContext, body: ResponseCreateRequest, admission: AdmissionTicket) -> JobRecord:
    """Map the input to the same job chat builds (`instructions` become a leading system message) and queue it."""
    jobs.check_model(ctx, body.model)
    _check(body)
    sampling = jobs.sampling_params(
        ctx,
        max_tokens=body.max_output_tokens,
        max_tokens_param="max_output_tokens",
        temperature=body.temperature,
        top_p=body.top_p,
        stop=None,
        seed=None,
        adjustments=body,
        logprobs=_logprobs(body),
    )
    messages = [ChatMessage(role="system", content=body.instructions)] if body.instructions else []
    offset = len(messages)
    if isinstance(body.input, str):
        messages.append(ChatMessage(role="user", content=body.input))
    else:
        messages.extend(_chat_message(item) for item in body.input)
    request = await jobs.build_request(
        ctx,
        messages,
        body.ocr,
        sampling,
        param_of=lambda i, j: f"input[{i - offset}].content[{j}]",
        prompt_param="input",
    )
    meta = {
        "object": "response",
        "model": body.model,
        "instructions": body.instructions,
        "metadata": body.metadata or {},
        "max_output_tokens": body.max_output_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_logprobs": body.top_logprobs,
        "store": body.store,
    }
    return await jobs.submit(ctx, request, admission, background=body.background, meta=meta)

"""The Responses API: request → OCR job (in the background or not) → the response object, or its SSE events.

Everything needed to rebuild a response lives with its job: the request's fields in the record's `meta`, the
state, progress and result in the record, the text in the job's events. So:
- `GET /v1/responses/{id}` rebuilds the object from the record. While the job runs it carries progress
  (`ocr_progress`) but no text (reading "the events so far" would block on a running job); the text comes with
  the final object, or live from the stream. A failed or cancelled job keeps the text read before it ended.
- The SSE events are a pure function of the job's events, replayed from the first: sequence numbers are stable,
  so `?stream=true&starting_after=N` resumes a stream exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

from app.context import AppContext
from app.errors import ApiError
from app.protocol.chat import ChatMessage, ContentPart, FileData, FilePart, ImageUrl, ImageUrlPart, TextPart
from app.protocol.common import TokenLogprob
from app.protocol.responses import (
    ContentPartAdded,
    ContentPartDone,
    IncompleteDetails,
    InputMessage,
    InputPart,
    OcrProgress,
    OutputItemAdded,
    OutputItemDone,
    OutputMessage,
    OutputText,
    OutputTextDelta,
    OutputTextDone,
    ResponseCompleted,
    ResponseCreated,
    ResponseCreateRequest,
    ResponseDeleted,
    ResponseError,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    ResponseObject,
    ResponseStatus,
    ResponseUsage,
    StreamEvent,
)
from app.serving import jobs
from app.serving.logprobs import ocr_pages, result_tokens, token_logprobs
from app.serving.sse import EventStream, frame
from ocr_engine.errors import ErrorKind
from ocr_engine.results import OcrResult, Usage
from ocr_engine.token_texts import TokenTexts
from workers.events import (
    JobCancelled,
    JobCompleted,
    JobError,
    JobEvent,
    JobFailed,
    JobStarted,
    PageFinished,
    TextDelta,
)
from workers.jobs import JobRecord, JobState

PREFIX = "resp_"
LOGPROBS = "message.output_text.logprobs"  # the one `include` value this server has anything for
CANCEL_WAIT_S = 10.0  # how long `cancel` waits for the job to report its end before answering anyway

# ---------------------------------------------------------------- request → job


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


async def _submit(ctx: AppContext, body: ResponseCreateRequest) -> JobRecord:
    """Map the input to the same job chat builds: `instructions` become a leading system message."""
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
    return await jobs.submit(ctx, request, background=body.background, meta=meta)


# ---------------------------------------------------------------- the response object


def _status_of(result: OcrResult) -> ResponseStatus:
    return "incomplete" if result.finish_reason == "length" else "completed"


def _usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def _error(error: JobError) -> ResponseError:
    # the SDK's ResponseError.code is an enumeration: our own codes stay in the message
    return ResponseError(
        code="invalid_prompt" if error.error_kind is ErrorKind.INVALID_REQUEST else "server_error",
        message=error.message,
    )


def _message(
    record: JobRecord, status: ResponseStatus, text: str | None, logprobs: list[TokenLogprob] | None = None
) -> OutputMessage:
    item_status = {"completed": "completed", "queued": "in_progress", "in_progress": "in_progress"}
    content = [] if text is None else [OutputText(text=text, logprobs=logprobs or [])]
    return OutputMessage(id=f"msg_{record.id}", status=item_status.get(status, "incomplete"), content=content)


def snapshot(
    record: JobRecord,
    status: ResponseStatus,
    *,
    started: bool,
    text: str | None = None,
    result: OcrResult | None = None,
    error: JobError | None = None,
    pages_done: int = 0,
    pages_total: int | None = None,
    texts: TokenTexts | None = None,
) -> ResponseObject:
    """The response object in a given state: `output` holds the message once the job has started, with the
    result's log probabilities (given `texts`, for a request that asked for them)."""
    meta: dict[str, Any] = record.meta
    logprobs = token_logprobs(texts, result_tokens(result)) if result and texts else None
    return ResponseObject(
        id=f"{PREFIX}{record.id}",
        created_at=int(record.created_at),
        status=status,
        model=meta.get("model", ""),
        output=[_message(record, status, text, logprobs)] if started else [],
        usage=_usage(result.usage) if result else None,
        error=_error(error) if error else None,
        incomplete_details=IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None,
        instructions=meta.get("instructions"),
        metadata=meta.get("metadata") or {},
        background=record.background,
        store=meta.get("store", True),
        max_output_tokens=meta.get("max_output_tokens"),
        temperature=meta.get("temperature", 0.0),
        top_p=meta.get("top_p", 1.0),
        top_logprobs=meta.get("top_logprobs"),
        ocr_progress=OcrProgress(pages_done=pages_done, pages_total=pages_total or record.pages_total),
        ocr_pages=ocr_pages(result) if result else [],
    )


async def _text_of_finished_job(ctx: AppContext, record: JobRecord) -> tuple[bool, str]:
    """(started, text read before the end) of a finished job: its event list is complete, so this never blocks."""
    started, text = False, []
    async for event in ctx.dispatcher.events(record.id):
        started = started or isinstance(event, JobStarted)
        if isinstance(event, TextDelta):
            text.append(event.text)
    return started, "".join(text)


async def current(ctx: AppContext, record: JobRecord) -> ResponseObject:
    """The response object as the record says now."""
    jobs.observe_end(ctx, record)  # a background job nobody collected is counted when a poll first sees its end
    progress = {"pages_done": record.pages_done, "pages_total": record.pages_total}
    match record.state:
        case JobState.QUEUED:
            return snapshot(record, "queued", started=False, **progress)
        case JobState.RUNNING:
            return snapshot(record, "in_progress", started=True, **progress)
        case JobState.COMPLETED if record.result is not None:
            result = record.result
            return snapshot(
                record,
                _status_of(result),
                started=True,
                text=result.text,
                result=result,
                texts=ctx.token_texts,
                **progress,
            )
    started, text = await _text_of_finished_job(ctx, record)
    status: ResponseStatus = "cancelled" if record.state is JobState.CANCELLED else "failed"
    return snapshot(record, status, started=started, text=text, error=record.error, **progress)


async def find(ctx: AppContext, response_id: str) -> JobRecord:
    """The job of a response id; 404 for unknown ids, ids without `resp_` and jobs that are not responses."""
    job_id = response_id.removeprefix(PREFIX)
    record = await ctx.dispatcher.get(job_id) if response_id.startswith(PREFIX) and job_id else None
    if record is None or record.meta.get("object") != "response":
        raise ApiError(404, f"no response with id `{response_id}`", code="response_not_found", param="response_id")
    return record


# ---------------------------------------------------------------- SSE events


class _Events:
    """Maps the job's events, in order, to Responses API stream events (numbered from 0)."""

    def __init__(self, record: JobRecord, texts: TokenTexts) -> None:
        self.record = record
        self.texts = texts
        self.item_id = f"msg_{record.id}"
        self.sequence = 0
        self.started = False
        self.pages_done = 0
        self.pages_total = record.pages_total
        self.text: list[str] = []

    def _next(self, cls: type[StreamEvent], **fields: Any) -> StreamEvent:
        event = cls(sequence_number=self.sequence, **fields)
        self.sequence += 1
        return event

    def _snapshot(self, status: ResponseStatus, **fields: Any) -> ResponseObject:
        return snapshot(
            self.record,
            status,
            started=self.started,
            pages_done=self.pages_done,
            pages_total=self.pages_total,
            texts=self.texts,
            **fields,
        )

    def _ids(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}

    def created(self) -> list[StreamEvent]:
        return [self._next(ResponseCreated, response=self._snapshot("queued"))]

    def _start(self, pages_total: int) -> list[StreamEvent]:
        self.started, self.pages_total = True, pages_total
        return [
            self._next(ResponseInProgress, response=self._snapshot("in_progress")),
            self._next(OutputItemAdded, output_index=0, item=_message(self.record, "in_progress", None)),
            self._next(ContentPartAdded, part=OutputText(text=""), **self._ids()),
        ]

    def map(self, event: JobEvent) -> list[StreamEvent]:
        match event:
            case JobStarted(pages_total=total):
                return self._start(total)
            case TextDelta(text=text, logprobs=tokens) if text or tokens:
                self.text.append(text)
                logprobs = token_logprobs(self.texts, tokens)
                return [self._next(OutputTextDelta, delta=text, logprobs=logprobs, **self._ids())]
            case PageFinished(pages_done=done):
                self.pages_done = done
            case JobCompleted(result=result):
                return self._complete(result)
            case JobFailed(error=error):
                text = "".join(self.text)
                return [self._next(ResponseFailed, response=self._snapshot("failed", text=text, error=error))]
            case JobCancelled():
                # no `response.cancelled` event in the SDK: `response.incomplete` whose response says `cancelled`
                response = self._snapshot("cancelled", text="".join(self.text))
                return [self._next(ResponseIncomplete, response=response)]
        return []

    def _complete(self, result: OcrResult) -> list[StreamEvent]:
        events = [] if self.started else self._start(self.pages_total)
        status = _status_of(result)
        final = ResponseCompleted if status == "completed" else ResponseIncomplete
        logprobs = token_logprobs(self.texts, result_tokens(result))
        part = OutputText(text=result.text, logprobs=logprobs)
        return [
            *events,
            self._next(OutputTextDone, text=result.text, logprobs=logprobs, **self._ids()),
            self._next(ContentPartDone, part=part, **self._ids()),
            self._next(OutputItemDone, output_index=0, item=_message(self.record, status, result.text, logprobs)),
            self._next(final, response=self._snapshot(status, text=result.text, result=result)),
        ]


def _sse(event: StreamEvent) -> bytes:
    return b"event: " + type(event).__struct_config__.tag.encode() + b"\n" + frame(event)


async def _stream(
    ctx: AppContext,
    record: JobRecord,
    source: AsyncIterator[JobEvent],
    starting_after: int | None = None,
    *,
    forget: bool = False,
) -> AsyncIterator[bytes]:
    """SSE frames of the events after `starting_after`; no `data: [DONE]` (OpenAI sends none here).
    `forget`: delete the job at the end (a response with store=false)."""
    after = -1 if starting_after is None else starting_after
    mapper = _Events(record, ctx.token_texts)
    try:
        for event in mapper.created():
            if event.sequence_number > after:
                yield _sse(event)
        async for job_event in source:
            for event in mapper.map(job_event):
                if event.sequence_number > after:
                    yield _sse(event)
    finally:
        with anyio.CancelScope(shield=True):  # also when a client that left cancelled this stream
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()  # now, not when collected: a foreground job is cancelled as soon as its client leaves
            if forget:
                await ctx.dispatcher.delete(record.id)


# ---------------------------------------------------------------- the endpoints


async def create_response(ctx: AppContext, body: ResponseCreateRequest) -> ResponseObject | EventStream:
    record = await _submit(ctx, body)
    if body.stream:
        # a client that leaves a foreground stream cancels its job; a background job runs on
        if body.background:
            source = jobs.observed(ctx, record, ctx.dispatcher.events(record.id))
        else:
            source = jobs.follow(ctx, record)
        return EventStream(_stream(ctx, record, source, forget=not body.store))
    if body.background:
        return await current(ctx, await ctx.dispatcher.get(record.id) or record)
    try:
        result = await jobs.collect(ctx, record)
    finally:
        if not body.store:
            await ctx.dispatcher.delete(record.id)
    progress = {"pages_done": len(result.pages), "pages_total": record.pages_total}
    return snapshot(
        record, _status_of(result), started=True, text=result.text, result=result, texts=ctx.token_texts, **progress
    )


async def retrieve_response(
    ctx: AppContext, response_id: str, *, stream: bool = False, starting_after: int | None = None
) -> ResponseObject | EventStream:
    record = await find(ctx, response_id)
    if stream:
        source = jobs.observed(ctx, record, ctx.dispatcher.events(record.id))
        return EventStream(_stream(ctx, record, source, starting_after))
    return await current(ctx, record)


async def _wait_for_end(ctx: AppContext, job_id: str, timeout: float) -> None:
    async def drain() -> None:
        async for _ in ctx.dispatcher.events(job_id):
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drain(), timeout)


async def cancel_response(ctx: AppContext, response_id: str) -> ResponseObject:
    """Cancel a queued or running background response; answers once the job has ended (or after CANCEL_WAIT_S)."""
    record = await find(ctx, response_id)
    if not record.background:
        raise ApiError(400, "only a background response can be cancelled", code="invalid_request", param="response_id")
    if record.state.terminal:
        status = (await current(ctx, record)).status  # the response's word for it (incomplete, not completed)
        raise ApiError(
            400,
            f"the response is already {status}: only a queued or in-progress response can be cancelled",
            code="invalid_request",
            param="response_id",
        )
    await ctx.dispatcher.cancel(record.id)
    await _wait_for_end(ctx, record.id, CANCEL_WAIT_S)
    return await current(ctx, await ctx.dispatcher.get(record.id) or record)


async def delete_response(ctx: AppContext, response_id: str) -> ResponseDeleted:
    """Forget a response (a running job is cancelled first)."""
    record = await find(ctx, response_id)
    if not await ctx.dispatcher.delete(record.id):
        raise ApiError(404, f"no response with id `{response_id}`", code="response_not_found", param="response_id")
    return ResponseDeleted(id=response_id)

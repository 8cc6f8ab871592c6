"""What chat and completions share: model and parameter checks, submitting a job, and reading its events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio

from app.admission.guard import AdmissionTicket, check_engine, check_queue, job_slot
from app.context import AppContext
from app.errors import ApiError, api_error_of_job
from app.protocol.chat import ChatMessage
from app.protocol.common import OcrOptions, ScoreAdjustments, Stop, stop_sequences
from app.protocol.errors import ErrorBody, ErrorResponse
from app.request_ids import current_request_id
from app.serving.image_limit import check_image_tokens
from app.serving.inputs import ParamOf, chat_param, resolve_chat
from app.serving.prompt_limit import check_prompt_length
from ocr_engine.modes import resolve_mode
from ocr_engine.request import DEFAULT_PAGE_SEPARATOR, OcrRequest, SamplingParams
from ocr_engine.results import OcrResult
from workers.events import JobCancelled, JobCompleted, JobError, JobEvent, JobFailed
from workers.jobs import JobRecord, JobState

log = logging.getLogger(__name__)


def check_model(ctx: AppContext, model: str | None) -> None:
    if model is not None and model not in (ctx.settings.model_name, ctx.settings.model):
        raise ApiError(
            404,
            f"the model `{model}` does not exist; this server serves `{ctx.settings.model_name}`",
            code="model_not_found",
            param="model",
        )


def sampling_params(
    ctx: AppContext,
    *,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: Stop,
    seed: int | None,
    adjustments: ScoreAdjustments,
    n: int | None = None,
    max_tokens_param: str = "max_tokens",
    logprobs: int | None = None,
) -> SamplingParams:
    """Validate OpenAI sampling fields against the model and turn them into engine parameters (`logprobs`: how
    many alternatives to report per token, None for no log probabilities)."""
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", code="unsupported_value", param="n")
    limit = ctx.model.max_model_len
    if max_tokens is not None and not 1 <= max_tokens <= limit:
        raise ApiError(
            400,
            f"{max_tokens_param} must be between 1 and the model's length of {limit} tokens, got {max_tokens}",
            code="invalid_value",
            param=max_tokens_param,
        )
    min_tokens = adjustments.min_tokens or 0
    if max_tokens is not None and min_tokens > max_tokens:
        raise ApiError(
            400,
            f"min_tokens ({min_tokens}) must not exceed {max_tokens_param} ({max_tokens})",
            code="invalid_value",
            param="min_tokens",
        )
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature or 0.0,
        top_p=1.0 if top_p is None else top_p,
        stop=stop_sequences(stop),
        seed=seed,
        frequency_penalty=adjustments.frequency_penalty or 0.0,
        presence_penalty=adjustments.presence_penalty or 0.0,
        repetition_penalty=adjustments.repetition_penalty or 1.0,
        logit_bias=_logit_bias(ctx, adjustments.logit_bias or {}),
        min_tokens=min_tokens,
        ignore_eos=adjustments.ignore_eos,
        logprobs=logprobs,
    )


def _logit_bias(ctx: AppContext, bias: dict[str, float]) -> dict[int, float]:
    """OpenAI's `logit_bias`: token ids as strings, each within the vocabulary."""
    vocab = len(ctx.model.tokenizer)
    ids = {key: int(key) for key in bias if key.isascii() and key.isdigit()}
    if bad := [key for key in bias if key not in ids or ids[key] >= vocab]:
        raise ApiError(
            400,
            f"logit_bias keys must be token ids from 0 to {vocab - 1}, got {', '.join(map(repr, bad[:5]))}",
            code="invalid_value",
            param="logit_bias",
        )
    return {ids[key]: value for key, value in bias.items()}


async def build_request(
    ctx: AppContext,
    messages: list[ChatMessage],
    options: OcrOptions | None,
    sampling: SamplingParams,
    param_of: ParamOf = chat_param,
    prompt_param: str = "messages",
) -> OcrRequest:
    """Check the OCR options, resolve the documents of chat-style messages and build the engine request."""
    options = options or OcrOptions()
    dpi = options.dpi or ctx.settings.default_dpi
    ctx.settings.document_limits.check_dpi(dpi)
    mode = resolve_mode(ctx.model.family, options.mode or ctx.settings.mode)
    resolved = await resolve_chat(ctx, messages, options, param_of)
    page_tokens = await check_image_tokens(ctx, resolved.documents, mode=mode, dpi=dpi)
    request = OcrRequest(
        prompt=resolved.prompt,
        documents=resolved.documents,
        sampling=sampling,
        output_format=options.output_format,
        mode=mode,
        dpi=dpi,
        page_separator=DEFAULT_PAGE_SEPARATOR if options.page_separator is None else options.page_separator,
    )
    await check_prompt_length(ctx, request.sequence_prompt, image_tokens=page_tokens, param=prompt_param)
    return request


async def submit(
    ctx: AppContext,
    request: OcrRequest,
    admission: AdmissionTicket,
    *,
    background: bool = False,
    meta: dict[str, Any] | None = None,
) -> JobRecord:
    """Queue the job of a request that admission control let in (`admission`: its ticket, from the route)."""
    await check_engine(ctx, admission)
    if request_id := current_request_id():  # the worker logs its job lines with the request's id
        meta = {**(meta or {}), "request_id": request_id}
    await check_queue(ctx, admission, request.sequence_count, background=background)
    async with job_slot(ctx, admission) as job_id:
        record = await ctx.dispatcher.submit(
            JobRecord.of(request, background=background, meta=meta, job_id=job_id), request
        )
    log.info("job %s queued: %d pages%s", record.id, record.pages_total, " (background)" if background else "")
    return record


_STATUS_OF_EVENT = {JobCompleted: "completed", JobFailed: "failed", JobCancelled: "cancelled"}


def observe_end(ctx: AppContext, record: JobRecord, event: JobEvent | None = None) -> None:
    """Count a job's end in the metrics, from its terminal event or its (terminal) record; once per job."""
    status = _STATUS_OF_EVENT.get(type(event)) if event is not None else None
    if status is None and record.state.terminal:
        status = record.state.value
    if status is None:
        return
    result = event.result if isinstance(event, JobCompleted) else record.result
    if status != JobState.COMPLETED.value:
        result = None
    ctx.metrics.record_job_end(
        record.id, status, created_at=record.created_at, finished_at=record.finished_at, result=result
    )


async def observed(ctx: AppContext, record: JobRecord, source: AsyncIterator[JobEvent]) -> AsyncIterator[JobEvent]:
    """`source` as is, counting the job's end when its terminal event passes (streams of background jobs)."""
    try:
        async for event in source:
            observe_end(ctx, record, event)
            yield event
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()


async def collect(ctx: AppContext, record: JobRecord) -> OcrResult:
    """Wait for a job's result; a failed job becomes the matching HTTP error."""
    async for event in ctx.dispatcher.events(record.id):
        observe_end(ctx, record, event)
        match event:
            case JobCompleted(result=result):
                return result
            case JobFailed(error=error):
                raise api_error_of_job(error)
            case JobCancelled():
                raise ApiError(400, "the job was cancelled", code="cancelled")
    raise ApiError(500, "the job ended without a result", type="server_error", code="internal_error")


async def follow(ctx: AppContext, record: JobRecord) -> AsyncIterator[JobEvent]:
    """A job's events for a stream; if the client goes away before the end, the job is cancelled."""
    finished = False
    try:
        async for event in ctx.dispatcher.events(record.id):
            observe_end(ctx, record, event)
            finished = isinstance(event, JobCompleted | JobFailed | JobCancelled)
            yield event
    finally:
        if not finished:
            # a client that left cancels the stream's task: shield the cancel, or its first await would be cancelled too
            with anyio.CancelScope(shield=True):
                await ctx.dispatcher.cancel(record.id)


def stream_error(error: JobError) -> ErrorResponse:
    """An error sent inside an SSE stream (the openai SDK raises it as an APIError)."""
    api_error = api_error_of_job(error)
    return ErrorResponse(
        error=ErrorBody(message=api_error.message, type=api_error.type, param=api_error.param, code=api_error.code)
    )

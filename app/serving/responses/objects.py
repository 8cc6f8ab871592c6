"""The response object: rebuilt from the job's record whenever it is asked for.

Everything needed lives with the job: the request's fields in the record's `meta`, the state, progress and result
in the record, the text in the job's events. While the job runs the object carries progress (`ocr_progress`) but
no text (reading "the events so far" would block on a running job); the text comes with the final object, or
live from the stream. A failed or cancelled job keeps the text read before it ended.
"""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from app.errors import ApiError
from app.protocol.common import TokenLogprob
from app.protocol.responses import (
    IncompleteDetails,
    ItemStatus,
    OcrProgress,
    OutputMessage,
    OutputText,
    ResponseError,
    ResponseObject,
    ResponseStatus,
    ResponseUsage,
)
from app.serving import jobs
from app.serving.logprobs import ocr_pages, result_tokens, token_logprobs
from ocr_engine.errors import ErrorKind
from ocr_engine.results import OcrResult, Usage
from ocr_engine.token_texts import TokenTexts
from workers.events import JobError, JobStarted, TextDelta
from workers.jobs import JobRecord, JobState

PREFIX = "resp_"


def status_of(result: OcrResult) -> ResponseStatus:
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


# The output message's status for each response status (an ended response that did not complete: incomplete).
_ITEM_STATUS: dict[ResponseStatus, ItemStatus] = {
    "completed": "completed",
    "queued": "in_progress",
    "in_progress": "in_progress",
}


def message_item(
    record: JobRecord, status: ResponseStatus, text: str | None, logprobs: list[TokenLogprob] | None = None
) -> OutputMessage:
    content = [] if text is None else [OutputText(text=text, logprobs=logprobs or [])]
    return OutputMessage(id=f"msg_{record.id}", status=_ITEM_STATUS.get(status, "incomplete"), content=content)


def snapshot(
    record: JobRecord,
    status: ResponseStatus,
    *,
    started: bool,
    text: str | None = None,
    result: OcrResult | None = None,
    error: JobError | None = None,
    progress: OcrProgress,
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
        output=[message_item(record, status, text, logprobs)] if started else [],
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
        ocr_progress=progress,
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


def progress_of(record: JobRecord, pages_done: int | None = None) -> OcrProgress:
    return OcrProgress(
        pages_done=record.pages_done if pages_done is None else pages_done, pages_total=record.pages_total
    )


def finished(ctx: AppContext, record: JobRecord, result: OcrResult, progress: OcrProgress) -> ResponseObject:
    """The response of a job that completed: its text, usage and log probabilities."""
    status = status_of(result)
    return snapshot(
        record, status, started=True, text=result.text, result=result, texts=ctx.token_texts, progress=progress
    )


async def current(ctx: AppContext, record: JobRecord) -> ResponseObject:
    """The response object as the record says now."""
    jobs.observe_end(ctx, record)  # a background job nobody collected is counted when a poll first sees its end
    progress = progress_of(record)
    match record.state:
        case JobState.QUEUED:
            return snapshot(record, "queued", started=False, progress=progress)
        case JobState.RUNNING:
            return snapshot(record, "in_progress", started=True, progress=progress)
        case JobState.COMPLETED if record.result is not None:
            return finished(ctx, record, record.result, progress)
    started, text = await _text_of_finished_job(ctx, record)
    status: ResponseStatus = "cancelled" if record.state is JobState.CANCELLED else "failed"
    return snapshot(record, status, started=started, text=text, error=record.error, progress=progress)


async def find(ctx: AppContext, response_id: str) -> JobRecord:
    """The job of a response id; 404 for unknown ids, ids without `resp_` and jobs that are not responses."""
    job_id = response_id.removeprefix(PREFIX)
    record = await ctx.dispatcher.get(job_id) if response_id.startswith(PREFIX) and job_id else None
    if record is None or record.meta.get("object") != "response":
        raise ApiError(404, f"no response with id `{response_id}`", code="response_not_found", param="response_id")
    return record

"""/v1/responses: create (foreground or background, streamed or not), retrieve, resume a stream, cancel, delete."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio

from app.admission.guard import AdmissionTicket
from app.context import AppContext
from app.errors import ApiError
from app.protocol.responses import ResponseCreateRequest, ResponseDeleted, ResponseObject
from app.serving import jobs
from app.serving.responses.events import ResponseEvents, sse
from app.serving.responses.input import submit
from app.serving.responses.objects import current, find, finished, progress_of
from app.serving.sse import EventStream
from workers.events import JobEvent
from workers.jobs import JobRecord

CANCEL_WAIT_S = 10.0  # how long `cancel` waits for the job to report its end before answering anyway


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
    mapper = ResponseEvents(record, ctx.token_texts)
    try:
        for event in mapper.created():
            if event.sequence_number > after:
                yield sse(event)
        async for job_event in source:
            for event in mapper.map(job_event):
                if event.sequence_number > after:
                    yield sse(event)
    finally:
        with anyio.CancelScope(shield=True):  # also when a client that left cancelled this stream
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()  # now, not when collected: a foreground job is cancelled as soon as its client leaves
            if forget:
                await ctx.dispatcher.delete(record.id)


# ---------------------------------------------------------------- the endpoints


async def create_response(
    ctx: AppContext, body: ResponseCreateRequest, admission: AdmissionTicket
) -> ResponseObject | EventStream:
    record = await submit(ctx, body, admission)
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
    return finished(ctx, record, result, progress_of(record, pages_done=len(result.pages)))


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

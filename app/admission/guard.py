"""Admission control: each client's request rate and jobs in flight (429), and backpressure of the queues (503).

A client is the API key it presents when keys are configured (only a hash of it is kept), else its address.
The counters live in `ctx.admission`: in memory in embedded mode, in Redis (shared by every API process) in
Celery mode. The openai SDK retries 429s and 503s after the `Retry-After` these errors carry. A request that
its job slots or its queue refuse is taken out of the request window again: otherwise those retries alone would
use up the client's requests per minute.

The guard of the routes that create work counts the request and leaves an `AdmissionTicket` in the request's
state; the route hands it to serving, which checks the engine, the queue and the client's job slots with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from app.admission.store import is_stale
from app.auth import bearer_token
from app.context import AppContext
from app.errors import ApiError
from ocr_engine.errors import ServiceUnavailable
from workers.dispatch import Readiness
from workers.jobs import new_job_id

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60.0
# Retry-After when a client's job slots or a queue are full: nothing tells when a job ends, so a few seconds
# (the openai SDK waits that long before it retries).
BUSY_RETRY_AFTER_S = 5


@dataclass(eq=False)
class AdmissionTicket:
    """A request that creates work, as admission control counted it: its client, and its entry in the client's
    request window (None when it was not counted, no limit being set, or was given back)."""

    client: str
    hit_id: str | None = None

    async def give_back(self, ctx: AppContext) -> None:
        """Uncount a request that a job slot or a queue refuses. A Redis that fails here only costs the client
        that request: the refusal it gets stays the same."""
        if self.hit_id is None:
            return
        hit_id, self.hit_id = self.hit_id, None
        try:
            await ctx.admission.release_hit(self.client, hit_id)
        except ServiceUnavailable as exc:
            log.warning("client %s: the refused request stays counted: %s", self.client, exc.message)


def client_id(connection: ASGIConnection) -> str:
    """The presented API key when keys are configured (a sha256 prefix: the key itself is never stored or
    logged), else the client's address."""
    ctx: AppContext = connection.app.state.context
    if ctx.settings.api_keys:
        key = bearer_token(connection) or ""
        return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return "addr-" + (connection.client.host if connection.client else "unknown")


def _too_many(message: str, retry_after: int) -> ApiError:
    """OpenAI's 429 body (type `requests`, code `rate_limit_exceeded`), which the openai SDK backs off on."""
    return ApiError(
        429, message, type="requests", code="rate_limit_exceeded", headers={"Retry-After": str(retry_after)}
    )


async def admit_request(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of the routes that create work (POST chat, completions, responses; not polls or cancels): counts
    the request against OCRSERVE_RATE_LIMIT_RPM and leaves its ticket for the route (`admission_ticket`)."""
    ctx: AppContext = connection.app.state.context
    ticket = AdmissionTicket(client_id(connection))
    connection.state.admission = ticket
    limit = ctx.settings.rate_limit_rpm
    if limit <= 0:
        return
    hit_id = uuid.uuid4().hex
    wait = await ctx.admission.hit(ticket.client, hit_id, limit, RATE_WINDOW_S)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        log.info("client %s: over %d requests per minute", ticket.client, limit)
        raise _too_many(
            f"rate limit reached: at most {limit} requests per minute (OCRSERVE_RATE_LIMIT_RPM={limit}); "
            f"try again in {retry_after} s",
            retry_after,
        )
    ticket.hit_id = hit_id


def admission_ticket(request: Request) -> AdmissionTicket:
    """The dependency that gives a work route the ticket its guard left."""
    ticket: AdmissionTicket = request.state.admission
    return ticket


async def check_engine(ctx: AppContext, ticket: AdmissionTicket) -> None:
    """503 while the model cannot run (a failed load, Redis unreachable); the request is not counted."""
    status = ctx.dispatcher.status()
    if status.readiness is Readiness.FAILED:
        await ticket.give_back(ctx)
        raise ApiError(503, status.message, type="service_unavailable_error", code="model_unavailable")


async def check_queue(ctx: AppContext, ticket: AdmissionTicket, pages: int, *, background: bool) -> None:
    """503 when the job's queue already holds work and the job's pages would take it past its bound (a job
    alone in its queue always gets in, however large). A soft bound: API processes that check at the same
    moment may all get in."""
    if background:
        bound, setting = ctx.settings.max_queued_pages, "OCRSERVE_MAX_QUEUED_PAGES"
    else:
        bound, setting = ctx.settings.max_queued_interactive_pages, "OCRSERVE_MAX_QUEUED_INTERACTIVE_PAGES"
    queued = await ctx.dispatcher.queued_pages(background)
    if queued and queued + pages > bound:
        await ticket.give_back(ctx)
        queue = "background" if background else "interactive"
        raise ApiError(
            503,
            f"the {queue} queue is full: {queued} pages are waiting and this request has {pages}, "
            f"over {setting}={bound}; try again in a few seconds",
            type="service_unavailable_error",
            code="queue_full",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        )


@asynccontextmanager
async def job_slot(ctx: AppContext, ticket: AdmissionTicket) -> AsyncIterator[str | None]:
    """Reserve one of the client's OCRSERVE_MAX_CONCURRENT_JOBS slots (429 when all are taken) under a new job
    id, for the body to submit the job with; released if the submit fails. Yields None (the job gets a new id of
    its own) when there is no limit."""
    client, limit = ticket.client, ctx.settings.max_concurrent_jobs
    if limit <= 0:
        yield None
        return
    held = await ctx.admission.reservations(client)
    records = await asyncio.gather(*(ctx.dispatcher.get(job_id) for job_id in held))
    stale = [job_id for (job_id, age), record in zip(held.items(), records, strict=True) if is_stale(record, age)]
    job_id = new_job_id()
    if not await ctx.admission.reserve(client, job_id, limit, stale):
        await ticket.give_back(ctx)
        log.info("client %s: %d jobs queued or running already", client, limit)
        raise _too_many(
            f"too many jobs in flight: at most {limit} queued or running at once "
            f"(OCRSERVE_MAX_CONCURRENT_JOBS={limit}); wait for one to finish, or cancel one",
            BUSY_RETRY_AFTER_S,
        )
    try:
        yield job_id
    except BaseException:
        with anyio.CancelScope(shield=True):
            await ctx.admission.release(client, job_id)
        raise
    await ctx.admission.confirm(client, job_id)

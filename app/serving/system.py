"""GET /, GET /health and GET /metrics: what this server is, whether it can take jobs, and how it is doing."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from app.context import AppContext
from app.protocol.system import Health, HealthChecks, Load, RedisCheck, ServerInfo, WorkersCheck
from ocr_engine.errors import OcrError, ServiceUnavailable
from workers.dispatch import Readiness
from workers.redis_client import RedisConnection

log = logging.getLogger(__name__)

REDIS_PING_TIMEOUT_S = 2.0
QUEUES = ("interactive", "background")


def package_version() -> str:
    try:
        return version("ocrserve")
    except PackageNotFoundError:
        return "0+unknown"


def describe_server(ctx: AppContext) -> ServerInfo:
    return ServerInfo(
        version=package_version(),
        model=ctx.settings.model_name,
        backend="embedded" if ctx.settings.embedded else "celery",
    )


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def health_report(ctx: AppContext, *, verbose: bool) -> tuple[Health, int]:
    """The health body and its status code: 200 when jobs can be taken (embedded: the model is loaded; Celery:
    Redis answers), else 503. `model_ready` says whether a model can run them now (Celery: a worker is ready).
    The checks of `verbose` add detail; they do not change the code."""
    status = ctx.dispatcher.status()
    ready = status.readiness is Readiness.READY
    body = Health(
        status=status.readiness.value,
        message=status.message,
        model_ready=ready and (ctx.settings.embedded or await _a_worker_is_ready(ctx)),
        version=package_version(),
        timestamp=_utc_now(),
        checks=await _checks(ctx) if verbose else None,
    )
    return body, 200 if ready else 503


async def _a_worker_is_ready(ctx: AppContext) -> bool:
    try:
        return any(worker.state == "ready" for worker in await ctx.dispatcher.workers())
    except OcrError:
        return False


async def _checks(ctx: AppContext) -> HealthChecks:
    redis = ctx.redis
    return HealthChecks(workers=await _workers_check(ctx), redis=await _redis_check(redis) if redis else None)


async def _redis_check(redis: RedisConnection) -> RedisCheck:
    """A PING on a new connection: what a new client would see, connecting included."""
    try:
        latency = await redis.ping(REDIS_PING_TIMEOUT_S, fresh=True)
    except ServiceUnavailable as exc:
        return RedisCheck(status="error", message=exc.message)
    return RedisCheck(status="ok", latency_ms=round(latency, 2))


async def _workers_check(ctx: AppContext) -> WorkersCheck:
    """Counts by state only: /health is open to probes, worker hosts and devices are in /v1/devices/status."""
    try:
        workers = await ctx.dispatcher.workers()
    except OcrError as exc:
        return WorkersCheck(status="error", message=exc.message)
    except Exception:
        log.exception("reading the worker registry failed")
        return WorkersCheck(status="error", message="reading the worker registry failed; see the server log")
    states: Counter[str] = Counter(worker.state for worker in workers)
    ready = states["ready"]
    message = f"{ready} of {len(workers)} workers ready" if workers else "no worker has reported"
    return WorkersCheck(status="ok" if ready else "error", message=message, total=len(workers), states=dict(states))


async def server_load(ctx: AppContext) -> Load:
    """Jobs queued or running (running: as the live workers report them, the API's own count without them),
    and the pages in the live workers' batches."""
    status = ctx.dispatcher.status()
    try:
        workers = [worker for worker in await ctx.dispatcher.workers() if worker.state != "lost"]
    except ServiceUnavailable:
        workers = []
    running = sum(worker.jobs_in_flight for worker in workers) if workers else status.running
    return Load(
        server_load=status.queued + running,
        running_sequences=sum(worker.running_sequences for worker in workers),
        waiting_sequences=sum(worker.waiting_sequences for worker in workers),
        kv_cache_tokens=sum(worker.kv_cache_tokens for worker in workers),
    )


async def render_metrics(ctx: AppContext) -> bytes:
    """The Prometheus text, with the queues' pages and the worker registry as of now. Without Redis those two
    are left out rather than failing the scrape: the scrape is how an operator sees the outage."""
    try:
        pages = {queue: await ctx.dispatcher.queued_pages(queue == "background") for queue in QUEUES}
        workers = await ctx.dispatcher.workers()
    except ServiceUnavailable:
        pages, workers = {}, []
    return ctx.metrics.render(ctx.dispatcher.status().queued, pages, workers)

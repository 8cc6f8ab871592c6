"""The dispatcher of the API in Celery mode: jobs go to Redis and a queue; the API never loads the model.

The jobs are those of every dispatcher (`workers.job_service`) over the Redis store and Celery's queues, plus
shards: a job of more than `shard_pages` pages runs as child jobs that any worker takes (`workers.shards`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ocr_engine.errors import InvalidInput, ServiceUnavailable
from ocr_engine.request import OcrRequest
from workers.celery_app import BACKGROUND_QUEUE, INTERACTIVE_QUEUE, CeleryQueue, make_celery
from workers.dispatch import EngineStatus, Readiness
from workers.events import JobEvent
from workers.job_service import Jobs, to_the_end
from workers.jobs import JobRecord, JobState, Shard, Sharding
from workers.redis_client import RedisConnection
from workers.redis_store import RedisJobStore
from workers.registry import SwitchResult, WorkerInfo, WorkerRegistry, choose_device
from workers.shards import merge_events, merge_records, split_request
from workers.switching import SwitchCommand, send_switch, switch_replies

log = logging.getLogger(__name__)
REDIS_CHECK_S = 2.0  # how often readiness asks Redis


def _with_a_seed(request: OcrRequest) -> OcrRequest:
    """A sampled job sent without a seed gets one of its own: a page read again (its worker was lost) then draws
    what the lost run drew, so the stream and the result hold the same text."""
    sampling = request.sampling
    if sampling.greedy or sampling.seed is not None:
        return request
    return msgspec.structs.replace(request, sampling=msgspec.structs.replace(sampling, seed=secrets.randbits(62)))


def _log_ids(record: JobRecord) -> dict[str, Any]:
    """What a child job carries of its parent's meta: the API request's id, for the worker's log lines."""
    return {key: record.meta[key] for key in ("request_id",) if key in record.meta}


class CeleryDispatcher(Jobs):
    def __init__(
        self,
        connection: RedisConnection,
        *,
        retention: int,
        redelivery_timeout: int,
        worker_timeout: float,
        switch_timeout: float,
        shard_pages: int = 0,
    ) -> None:
        self._connection = connection
        self._shard_pages = shard_pages
        self._switch_timeout = switch_timeout
        self._store = RedisJobStore(connection, retention)
        self._queue = CeleryQueue(make_celery(connection.url, redelivery_timeout=redelivery_timeout), connection.where)
        super().__init__(self._store, self._queue)
        self._registry = WorkerRegistry(connection, worker_timeout)
        self._last_request: tuple[str, OcrRequest] | None = None
        self._status = EngineStatus(readiness=Readiness.LOADING, message="connecting to Redis")
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._monitor = asyncio.create_task(self._watch_redis())

    async def close(self) -> None:
        # An event, not cancel(): redis-py can swallow a cancellation that lands inside one of its calls.
        self._stopping.set()
        if self._monitor:
            await self._monitor

    def status(self) -> EngineStatus:
        return self._status

    async def submit(self, record: JobRecord, request: OcrRequest) -> JobRecord:
        """A job of more than `shard_pages` pages runs as shards (workers.shards)."""
        request = _with_a_seed(request)
        parts = split_request(request, self._shard_pages)
        if len(parts) == 1:
            return await super().submit(record, request)
        await to_the_end(self._create_shards(record, request, parts))
        return record

    async def _create_shards(self, record: JobRecord, request: OcrRequest, parts: list[tuple[int, OcrRequest]]) -> None:
        """The parent record (with the request only if the job keeps its documents: the children never do), then
        each child as a job of its own, in page order (their messages queue in that order)."""
        children = []
        for first, part in parts:
            child = JobRecord.of(part, background=record.background, meta={"parent": record.id, **_log_ids(record)})
            child.keeps_documents = False
            children.append((first, child, part))
        shards = tuple(Shard(job_id=child.id, first_page=first) for first, child, _ in children)
        record.sharding = Sharding(shards=shards, separator=request.text_separator)
        await self._store.create(record, request if record.keeps_documents else None)
        log.info("job %s: %d pages in %d shards", record.id, record.pages_total, len(shards))
        for _, child, part in children:
            await self.create(child, part)

    async def get(self, job_id: str) -> JobRecord | None:
        record = await super().get(job_id)
        if record is None or record.sharding is None:
            return record
        children = await self._store.get_many([shard.job_id for shard in record.sharding.shards])
        merged = merge_records(record, children)
        if merged.state in (JobState.FAILED, JobState.CANCELLED):  # a child ended the job: stop the others
            for child in children:
                if child is not None and not child.state.terminal:
                    await self.cancel_job(child)
        return merged

    async def request(self, job_id: str) -> OcrRequest | None:
        """The last one read is kept: a client reading a job's page images one by one decodes its (possibly
        large) request once."""
        cached = self._last_request
        if cached is not None and cached[0] == job_id:
            return cached[1]
        request = await super().request(job_id)
        self._last_request = None if request is None else (job_id, request)
        return request

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """A sharded job's events are made from its children's (see workers.shards)."""
        record = await super().get(job_id)
        sharded = record is not None and record.sharding is not None
        source = merge_events(record, super().events) if record and sharded else super().events(job_id)
        async for event in source:
            yield event

    async def cancel(self, job_id: str) -> JobRecord | None:
        record = await super().get(job_id)
        if record is None:
            return None
        if record.sharding is None:
            return await super().cancel(job_id)
        for shard in record.sharding.shards:
            await super().cancel(shard.job_id)
        return await self.get(job_id)

    async def delete(self, job_id: str) -> bool:
        record = await self.cancel(job_id)
        if record is None:
            return False
        for shard in record.sharding.shards if record.sharding else ():
            await self._store.delete(shard.job_id)
        await self._store.delete(job_id)
        return True

    async def workers(self) -> list[WorkerInfo]:
        return await self._registry.workers()

    async def switch_device(self, device: str, worker_id: str | None = None) -> list[SwitchResult]:
        """The targets that have the device get the command; the others are reported as not switched. A 400
        only when none of them has it."""
        targets = self._switch_targets(await self.workers(), worker_id)
        able, unable = [], []
        for worker in targets:
            try:
                choose_device(device, worker.available_devices)
                able.append(worker)
            except InvalidInput as exc:
                unable.append((worker, exc.message))
        if not able:
            worker, message = unable[0]
            raise InvalidInput(message if len(unable) == 1 else f"worker {worker.worker_id}: {message}", param="device")
        command = SwitchCommand(command_id=uuid.uuid4().hex, device=device)
        await send_switch(self._connection, [w.worker_id for w in able], command)
        replies = await switch_replies(self._connection, command.command_id, len(able), self._switch_timeout)
        answered = {reply.worker_id for reply in replies}
        timeout = f"no answer within {self._switch_timeout:.0f} s (OCRSERVE_SWITCH_TIMEOUT)"
        others = [(w, timeout) for w in able if w.worker_id not in answered] + unable
        return replies + [_not_switched(worker, message) for worker, message in others]

    @staticmethod
    def _switch_targets(workers: list[WorkerInfo], worker_id: str | None) -> list[WorkerInfo]:
        """The worker asked for, or every live one; InvalidInput / ServiceUnavailable when there is none."""
        live = [worker for worker in workers if worker.state != "lost"]
        if worker_id is None:
            if not live:
                raise ServiceUnavailable("no worker is running; start one with `ocrserve worker`")
            return live
        known = ", ".join(worker.worker_id for worker in live) or "none"
        chosen = [worker for worker in live if worker.worker_id == worker_id]
        if not chosen:
            raise InvalidInput(f"no live worker {worker_id!r}; live workers: {known}", param="worker")
        return chosen

    async def _watch_redis(self) -> None:
        """Readiness follows Redis: a worker-less queue still accepts jobs, an unreachable Redis does not."""
        client = self._connection.client
        while not self._stopping.is_set():
            try:
                await self._connection.ping(3.0)
                with self._connection.reachable():
                    queued = await client.llen(INTERACTIVE_QUEUE) + await client.llen(BACKGROUND_QUEUE)
                self._status = EngineStatus(readiness=Readiness.READY, message="ready", queued=queued)
            except Exception as exc:  # unreachable, or refusing (a replica in failover, an ACL): not ready either way
                message = (
                    exc.message if isinstance(exc, ServiceUnavailable) else f"Redis at {self._connection.where}: {exc}"
                )
                if self._status.message != message:
                    log.warning(message)
                self._status = EngineStatus(readiness=Readiness.FAILED, message=message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REDIS_CHECK_S)


def _not_switched(worker: WorkerInfo, message: str) -> SwitchResult:
    device = worker.device.device if worker.device else None
    return SwitchResult(
        worker_id=worker.worker_id, success=False, previous_device=device, current_device=device, message=message
    )

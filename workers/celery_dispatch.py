"""The dispatcher of the API in Celery mode: jobs go to Redis and a queue; the API never loads the model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import kombu.exceptions
import msgspec
import redis

from ocr_engine.errors import InvalidInput, ServiceUnavailable
from ocr_engine.request import OcrRequest
from workers.celery_app import BACKGROUND_QUEUE, INTERACTIVE_QUEUE, RUN_JOB_TASK, make_celery, queue_for
from workers.dispatch import EngineStatus, Readiness
from workers.events import JobCancelled, JobError, JobEvent, JobFailed
from workers.jobs import JobRecord, JobState, Shard, Sharding
from workers.redis_store import AsyncJobReader, JobStore, redis_location, unavailable_as_503
from workers.registry import SwitchResult, WorkerInfo, choose_device, read_workers
from workers.replays import ReplayFilter
from workers.shards import merge_events, merge_records, split_request
from workers.switching import SwitchCommand, send_switch, switch_replies

log = logging.getLogger(__name__)

T = TypeVar("T")


async def _to_the_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile; the cancellation then lands at the
    caller's next await. A thread cannot be stopped midway: cut short, the caller would think that nothing was
    done while the thread goes on and does it."""
    task = asyncio.ensure_future(work)
    current = asyncio.current_task()
    assert current is not None, "awaited in a task"
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})  # unlike shield, raises nothing of the task's own
        except asyncio.CancelledError as exc:
            cancelled = exc
            current.uncancel()  # held back, not swallowed: asked again below
    if cancelled is not None:
        current.cancel(*cancelled.args)
    return task.result()


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


class CeleryDispatcher:
    def __init__(
        self,
        redis_url: str,
        *,
        retention: int,
        redelivery_timeout: int,
        worker_timeout: float,
        switch_timeout: float,
        shard_pages: int = 0,
    ) -> None:
        self._url = redis_url
        self._shard_pages = shard_pages
        self._worker_timeout = worker_timeout
        self._switch_timeout = switch_timeout
        self._where = redis_location(redis_url)
        self._store = JobStore.connect(redis_url, retention)
        self._reader = AsyncJobReader.connect(redis_url)
        self._last_request: tuple[str, OcrRequest] | None = None
        self._celery = make_celery(redis_url, redelivery_timeout=redelivery_timeout)
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
        await self._reader.close()
        self._store.client.close()

    def status(self) -> EngineStatus:
        return self._status

    async def submit(
        self,
        request: OcrRequest,
        *,
        background: bool = False,
        meta: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """The enqueue runs to its end even if the request is cancelled meanwhile: a job its thread creates keeps
        the job slot the caller reserved for it (see `_to_the_end`). A job of more than `shard_pages` pages runs
        as shards (workers.shards)."""
        request = _with_a_seed(request)
        record = JobRecord.of(request, background=background, meta=meta, job_id=job_id)
        parts = split_request(request, self._shard_pages)
        with self._unavailable_as_503():
            if len(parts) == 1:
                await _to_the_end(asyncio.to_thread(self._enqueue, record, request))
            else:
                await _to_the_end(asyncio.to_thread(self._enqueue_shards, record, request, parts))
        return record

    async def queued_pages(self, background: bool) -> int:
        with self._unavailable_as_503():
            return await self._reader.queued_pages(background)

    def _enqueue(self, record: JobRecord, request: OcrRequest) -> None:
        """Create the record, then send its message. A message that cannot be sent fails the job: no queued
        record (its pages counted in its queue) is left waiting for a message that never comes."""
        self._store.create(record, request)
        try:
            self._celery.send_task(
                RUN_JOB_TASK, args=[record.id], task_id=record.id, queue=queue_for(record.background)
            )
        except Exception as exc:
            self._fail_unsent(record.id, exc)
            if isinstance(exc, kombu.exceptions.OperationalError):
                raise ServiceUnavailable(f"cannot queue the job at {self._where} (OCRSERVE_REDIS_URL): {exc}") from exc
            raise

    def _enqueue_shards(self, record: JobRecord, request: OcrRequest, parts: list[tuple[int, OcrRequest]]) -> None:
        """The parent record (with the request only if the job keeps its documents: the children never do), then
        each child as a job of its own, in page order (their messages queue in that order)."""
        children = []
        for first, part in parts:
            child = JobRecord.of(part, background=record.background, meta={"parent": record.id, **_log_ids(record)})
            child.keeps_documents = False
            children.append((first, child, part))
        shards = tuple(Shard(job_id=child.id, first_page=first) for first, child, _ in children)
        record.sharding = Sharding(shards=shards, separator=request.text_separator)
        self._store.create_parent(record, request if record.keeps_documents else None)
        log.info("job %s: %d pages in %d shards", record.id, record.pages_total, len(shards))
        for _, child, part in children:
            self._enqueue(child, part)

    def _fail_unsent(self, job_id: str, exc: Exception) -> None:
        """Best effort: the Redis that refused the message may refuse this too; the record then expires, and its
        pages stop counting, at the end of the retention."""
        log.warning("job %s: its message could not be sent (%s); marking it failed", job_id, exc)
        error = JobError.of(ServiceUnavailable(f"the job could not be queued ({exc}); submit it again"))
        try:
            self._store.append(job_id, JobFailed(error=error))
        except (redis.RedisError, OSError) as append_exc:
            log.warning("job %s: cannot mark it failed either: %s", job_id, append_exc)

    async def get(self, job_id: str) -> JobRecord | None:
        with self._unavailable_as_503():
            record = await self._reader.get(job_id)
            if record is None or record.sharding is None:
                return record
            children = await self._reader.get_many([shard.job_id for shard in record.sharding.shards])
        merged = merge_records(record, children)
        if merged.state in (JobState.FAILED, JobState.CANCELLED):  # a child ended the job: stop the others
            for child in children:
                if child is not None and not child.state.terminal:
                    await self._cancel_job(child)
        return merged

    async def request(self, job_id: str) -> OcrRequest | None:
        """The last one read is kept: a client reading a job's page images one by one decodes its (possibly
        large) request once."""
        cached = self._last_request
        if cached is not None and cached[0] == job_id:
            return cached[1]
        with self._unavailable_as_503():
            request = await asyncio.to_thread(self._store.load_request, job_id)
        self._last_request = None if request is None else (job_id, request)
        return request

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events, a rerun's repeated text left out (see workers.replays); a sharded job's made from
        its children's (see workers.shards)."""
        with self._unavailable_as_503():
            record = await self._reader.get(job_id)
        sharded = record is not None and record.sharding is not None
        source = merge_events(record, self._own_events) if sharded else self._own_events(job_id)
        async for event in source:
            yield event

    async def _own_events(self, job_id: str) -> AsyncIterator[JobEvent]:
        once = ReplayFilter()
        with self._unavailable_as_503():
            async for event in self._reader.events(job_id):
                if (kept := once(event)) is not None:
                    yield kept

    async def cancel(self, job_id: str) -> JobRecord | None:
        record = await self.get(job_id)
        if record is None:
            return None
        if record.sharding is not None:
            for shard in record.sharding.shards:
                await self.cancel(shard.job_id)
        else:
            await self._cancel_job(record)
        return await self.get(job_id)

    async def _cancel_job(self, record: JobRecord) -> None:
        """Flag a job that runs, revoke one that waits."""
        with self._unavailable_as_503():
            await asyncio.to_thread(self._store.request_cancel, record.id)
            if record.state is JobState.QUEUED:
                await asyncio.to_thread(self._store.append, record.id, JobCancelled())
                await asyncio.to_thread(self._celery.control.revoke, record.id)

    async def delete(self, job_id: str) -> bool:
        record = await self.cancel(job_id)
        if record is None:
            return False
        with self._unavailable_as_503():
            for shard in record.sharding.shards if record.sharding else ():
                await asyncio.to_thread(self._store.delete, shard.job_id)
            await asyncio.to_thread(self._store.delete, job_id)
        return True

    async def workers(self) -> list[WorkerInfo]:
        with self._unavailable_as_503():
            return await read_workers(self._reader.client, self._worker_timeout)

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
        with self._unavailable_as_503():
            await send_switch(self._reader.client, [w.worker_id for w in able], command)
            replies = await switch_replies(self._reader.client, command.command_id, len(able), self._switch_timeout)
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

    def _unavailable_as_503(self) -> contextlib.AbstractContextManager[None]:
        return unavailable_as_503(self._where)

    async def _watch_redis(self) -> None:
        """Readiness follows Redis: a worker-less queue still accepts jobs, an unreachable Redis does not."""
        while not self._stopping.is_set():
            try:
                client = self._reader.client
                await asyncio.wait_for(client.ping(), 3.0)
                queued = await client.llen(INTERACTIVE_QUEUE) + await client.llen(BACKGROUND_QUEUE)
                self._status = EngineStatus(readiness=Readiness.READY, message="ready", queued=queued)
            except (redis.RedisError, OSError, TimeoutError) as exc:
                message = f"cannot reach Redis at {self._where} (OCRSERVE_REDIS_URL): {exc}"
                if self._status.message != message:
                    log.warning(message)
                self._status = EngineStatus(readiness=Readiness.FAILED, message=message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 2.0)


def _not_switched(worker: WorkerInfo, message: str) -> SwitchResult:
    device = worker.device.device if worker.device else None
    return SwitchResult(
        worker_id=worker.worker_id, success=False, previous_device=device, current_device=device, message=message
    )

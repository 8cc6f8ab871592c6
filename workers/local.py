"""Embedded mode: the model lives in the API process and runs many jobs at once; jobs and events live in memory.

Two lanes of job threads, one for interactive jobs and one for background ones, `concurrency` threads each, so a
chat never waits for a thread behind long background jobs. Every job thread feeds the one engine, whose
scheduler decodes the pages of all of them together.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ocr_engine.errors import InvalidInput, ModelUnavailable, OcrError, ServiceUnavailable
from ocr_engine.request import OcrRequest
from workers.dispatch import EngineStatus, Readiness
from workers.events import TERMINAL_EVENTS, JobCancelled, JobError, JobEvent, JobFailed
from workers.jobs import JobRecord, JobState
from workers.model_host import ModelHost
from workers.registry import SwitchResult, WorkerInfo, choose_device
from workers.reporter import WorkerReporter
from workers.runner import run_job

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    record: JobRecord
    request: OcrRequest | None
    events: list[JobEvent] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class LocalDispatcher:
    def __init__(
        self,
        load: Callable[[], ModelHost],
        *,
        model: str,
        job_ttl: float = 3600.0,
        max_jobs: int = 1000,
        concurrency: int = 16,
        stall_limit: float = float("inf"),
    ) -> None:
        self._load = load
        self._stall_limit = stall_limit
        self._reporter = WorkerReporter("embedded", model)
        self._job_ttl = job_ttl
        self._max_jobs = max_jobs
        self._concurrency = max(1, concurrency)
        self._jobs: dict[str, _Job] = {}
        self._queues: dict[bool, queue.Queue[str | None]] = {False: queue.Queue(), True: queue.Queue()}
        self._lock = threading.Lock()
        self._readiness = Readiness.LOADING
        self._message = "loading the model"
        self._running: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        loader = threading.Thread(target=self._load_and_serve, name="ocr-loader", daemon=True)
        self._threads.append(loader)
        loader.start()

    async def close(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        for lane in self._queues.values():
            for _ in range(self._concurrency):
                lane.put(None)
        for thread in list(self._threads):
            await asyncio.to_thread(thread.join, 30)
        if self._reporter.host is not None:
            await asyncio.to_thread(self._reporter.host.engine.close)

    def status(self) -> EngineStatus:
        """As the loader left it, unless one model step has run past `stall_limit` (a call that never returns):
        then `failed`, so /health answers 503 for an orchestrator to restart the process, and admission refuses
        new jobs instead of queueing them behind a model that will not move."""
        readiness, message = self._readiness, self._message
        host = self._reporter.host
        if readiness is Readiness.READY and host is not None:
            stalled = host.engine.scheduler.stalled_for()
            if stalled > self._stall_limit:
                readiness = Readiness.FAILED
                message = f"a model step has run for {stalled:.0f} s: the model is stuck; restart the server"
        return EngineStatus(
            readiness=readiness,
            message=message,
            queued=sum(lane.qsize() for lane in self._queues.values()),
            running=len(self._running),
        )

    async def submit(
        self,
        request: OcrRequest,
        *,
        background: bool = False,
        meta: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        self._evict()
        record = JobRecord.of(request, background=background, meta=meta, job_id=job_id)
        job = _Job(record=record, request=request)
        self._jobs[job.record.id] = job
        self._queues[background].put(job.record.id)
        return job.record

    async def queued_pages(self, background: bool) -> int:
        return sum(
            job.record.pages_total
            for job in self._jobs.values()
            if job.record.state is JobState.QUEUED and job.record.background == background
        )

    async def get(self, job_id: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        return job.record if job else None

    async def request(self, job_id: str) -> OcrRequest | None:
        job = self._jobs.get(job_id)
        return job.request if job else None

    async def delete(self, job_id: str) -> bool:
        if await self.cancel(job_id) is None:
            return False
        del self._jobs[job_id]
        return True

    async def cancel(self, job_id: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        job.cancel.set()
        if job.record.state is JobState.QUEUED:
            self._emit(job, JobCancelled())
        return job.record

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        job = self._jobs.get(job_id)
        if job is None:
            return
        loop = asyncio.get_running_loop()
        seen = 0
        while True:
            while seen < len(job.events):
                event = job.events[seen]
                seen += 1
                yield event
                if isinstance(event, TERMINAL_EVENTS):
                    return
            waiter = loop.create_future()
            job.waiters.append(waiter)
            if seen == len(job.events):
                await waiter

    async def workers(self) -> list[WorkerInfo]:
        # off the event loop: describing devices reads /proc and asks CUDA
        return [await asyncio.to_thread(self._reporter.snapshot)]

    async def switch_device(self, device: str, worker_id: str | None = None) -> list[SwitchResult]:
        reporter = self._reporter
        if worker_id not in (None, reporter.worker_id):
            message = f"no worker {worker_id!r}; the embedded worker is {reporter.worker_id!r}"
            raise InvalidInput(message, param="worker")
        if reporter.host is None:
            raise ServiceUnavailable(f"the model is not loaded yet ({reporter.message})")
        choose_device(device, await asyncio.to_thread(reporter.host.available_devices))
        result = await asyncio.to_thread(reporter.switch, device)
        if reporter.state == "failed":  # the model could not be put back where it was
            self._readiness, self._message = Readiness.FAILED, reporter.message
        return [result]

    def _emit(self, job: _Job, event: JobEvent) -> None:
        self._reporter.observe(event)
        with self._lock:
            if job.record.state.terminal:
                return
            job.record.apply(event)
            job.events.append(event)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, job)

    @staticmethod
    def _wake(job: _Job) -> None:
        waiters, job.waiters = job.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _evict(self) -> None:
        """Forget finished jobs past their time to live, and the oldest finished ones beyond `max_jobs`."""
        now = time.time()
        finished = [j for j in self._jobs.values() if j.record.finished_at is not None]
        finished.sort(key=lambda j: j.record.finished_at or 0.0)
        excess = len(self._jobs) - self._max_jobs + 1
        for index, job in enumerate(finished):
            if index < excess or now - (job.record.finished_at or now) > self._job_ttl:
                del self._jobs[job.record.id]

    def _fail_queued(self, error: JobError) -> None:
        for lane in self._queues.values():
            while True:
                try:
                    job_id = lane.get_nowait()
                except queue.Empty:
                    break
                if job_id is not None and (job := self._jobs.get(job_id)):
                    self._emit(job, JobFailed(error=error))

    def _load_and_serve(self) -> None:
        try:
            ocr = self._load()
        except Exception as exc:
            self._readiness = Readiness.FAILED
            self._message = exc.message if isinstance(exc, OcrError) else f"model failed to load: {exc}"
            self._reporter.failed(self._message)
            log.error("model failed to load: %s", self._message, exc_info=not isinstance(exc, OcrError))
            self._fail_queued(JobError.of(ModelUnavailable(self._message)))
            return
        self._reporter.ready(ocr)
        self._readiness, self._message = Readiness.READY, "ready"
        for background, lane in self._queues.items():
            for number in range(self._concurrency):
                name = f"ocr-{'background' if background else 'interactive'}-{number}"
                thread = threading.Thread(target=self._serve_lane, args=(lane, ocr), name=name, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _serve_lane(self, lane: queue.Queue[str | None], ocr: ModelHost) -> None:
        while (job_id := lane.get()) is not None:
            job = self._jobs.get(job_id)
            if job is None or job.record.state.terminal or job.request is None:
                continue
            self._running.add(job_id)
            try:
                emit = functools.partial(self._emit, job)
                request_id = job.record.meta.get("request_id")
                with self._reporter.running(job_id):
                    run_job(
                        job_id,
                        job.request,
                        ocr,
                        emit,
                        job.cancel.is_set,
                        background=job.record.background,
                        request_id=request_id,
                    )
            finally:
                if not job.record.keeps_documents:
                    job.request = None
                self._running.discard(job_id)

"""Embedded mode: the model lives in the API process and runs many jobs at once; jobs and events live in memory.

The jobs are those of every dispatcher (`workers.job_service`) over the memory store and this process's job
threads (`workers.thread_queue`). The model loads on a thread of its own, so the API answers (503) meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from ocr_engine.errors import InvalidInput, ModelUnavailable, OcrError, ServiceUnavailable
from workers.dispatch import EngineStatus, Readiness
from workers.events import JobError, JobEvent, JobFailed
from workers.job_service import Jobs
from workers.memory_store import MemoryJobStore
from workers.model_host import ModelHost
from workers.registry import SwitchResult, WorkerInfo, choose_device
from workers.reporter import WorkerReporter
from workers.runner import run_job
from workers.thread_queue import ThreadQueue

log = logging.getLogger(__name__)


class LocalDispatcher(Jobs):
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
        self._store = MemoryJobStore(ttl=job_ttl, max_jobs=max_jobs)
        self._queue = ThreadQueue(concurrency)
        super().__init__(self._store, self._queue)
        self._readiness = Readiness.LOADING
        self._message = "loading the model"
        self._running: set[str] = set()
        self._loader: threading.Thread | None = None

    async def start(self) -> None:
        self._loader = threading.Thread(target=self._load_and_serve, name="ocr-loader", daemon=True)
        self._loader.start()

    async def close(self) -> None:
        self._store.cancel_all()
        threads = self._queue.stop()
        for thread in [self._loader, *threads]:
            if thread is not None:
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
        queued, running = self._queue.waiting(), len(self._running)
        return EngineStatus(readiness=readiness, message=message, queued=queued, running=running)

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

    def _load_and_serve(self) -> None:
        try:
            host = self._load()
        except Exception as exc:
            self._readiness = Readiness.FAILED
            self._message = exc.message if isinstance(exc, OcrError) else f"model failed to load: {exc}"
            self._reporter.failed(self._message)
            log.error("model failed to load: %s", self._message, exc_info=not isinstance(exc, OcrError))
            error = JobError.of(ModelUnavailable(self._message))
            for job_id in self._queue.take_waiting():
                self._store.add(job_id, JobFailed(error=error))
            return
        self._reporter.ready(host)
        self._readiness, self._message = Readiness.READY, "ready"
        self._queue.start(lambda job_id: self._run(job_id, host))

    def _run(self, job_id: str, host: ModelHost) -> None:
        """One job on its lane's thread (skipped if it ended while it waited)."""
        taken = self._store.take(job_id)
        if taken is None:
            return
        record, request = taken
        self._running.add(job_id)
        try:
            with self._reporter.running(job_id):
                run_job(
                    job_id,
                    request,
                    host,
                    lambda event: self._emit(job_id, event),
                    lambda: self._store.cancel_requested(job_id),
                    background=record.background,
                    request_id=record.meta.get("request_id"),
                )
        finally:
            self._running.discard(job_id)

    def _emit(self, job_id: str, event: JobEvent) -> None:
        self._reporter.observe(event)
        self._store.add(job_id, event)

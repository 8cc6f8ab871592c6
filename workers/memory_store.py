"""Jobs of the embedded server, in this process's memory.

The API reads on its event loop while job threads add events, so every change happens under one lock, and a
reader following a job is woken on its own loop. Finished jobs are forgotten after their time to live, and the
oldest finished ones beyond `max_jobs`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ocr_engine.request import OcrRequest
from workers.events import TERMINAL_EVENTS, JobEvent
from workers.jobs import JobRecord, JobState


@dataclass(eq=False)
class _Job:
    record: JobRecord
    request: OcrRequest | None
    events: list[JobEvent] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class MemoryJobStore:
    def __init__(self, *, ttl: float = 3600.0, max_jobs: int = 1000) -> None:
        self._ttl = ttl
        self._max_jobs = max_jobs
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    async def create(self, record: JobRecord, request: OcrRequest | None) -> None:
        with self._lock:
            self._evict()
            self._jobs[record.id] = _Job(record=record, request=request)

    async def get(self, job_id: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        return job.record if job else None

    async def request(self, job_id: str) -> OcrRequest | None:
        job = self._jobs.get(job_id)
        return job.request if job else None

    async def append(self, job_id: str, event: JobEvent) -> bool:
        return self.add(job_id, event)

    def add(self, job_id: str, event: JobEvent) -> bool:
        """`append` for the job threads: it never waits on the event loop."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.record.apply(event):
                return False
            job.events.append(event)
            if isinstance(event, TERMINAL_EVENTS) and not job.record.keeps_documents:
                job.request = None
        _wake_all(job)
        return True

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        job = self._jobs.get(job_id)
        seen = 0
        while job is not None and self._jobs.get(job_id) is job:  # a deleted job's readers stop
            while seen < len(job.events):
                event = job.events[seen]
                seen += 1
                yield event
                if isinstance(event, TERMINAL_EVENTS):
                    return
            with self._lock:
                if seen < len(job.events) or self._jobs.get(job_id) is not job:
                    continue
                waiter = asyncio.get_running_loop().create_future()
                job.waiters.append(waiter)
            await waiter

    async def request_cancel(self, job_id: str) -> None:
        if job := self._jobs.get(job_id):
            job.cancel.set()

    def take(self, job_id: str) -> tuple[JobRecord, OcrRequest] | None:
        """A queued job's record and request, for the thread that runs it (any thread); None when it ended
        meanwhile (cancelled while it waited) or is gone."""
        job = self._jobs.get(job_id)
        if job is None or job.record.state.terminal or job.request is None:
            return None
        return job.record, job.request

    def cancel_requested(self, job_id: str) -> bool:
        """What a running job checks between its pages' tokens (any thread)."""
        job = self._jobs.get(job_id)
        return job is None or job.cancel.is_set()

    async def delete(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            _wake_all(job)

    async def queued_pages(self, background: bool) -> int:
        with self._lock:
            records = [job.record for job in self._jobs.values()]
        return sum(r.pages_total for r in records if r.state is JobState.QUEUED and r.background == background)

    def cancel_all(self) -> None:
        """Flag every job (the process is shutting down)."""
        for job in list(self._jobs.values()):
            job.cancel.set()

    def _evict(self) -> None:
        """Forget finished jobs past their time to live, and the oldest finished ones beyond `max_jobs`."""
        now = time.time()
        finished = sorted(
            (job for job in self._jobs.values() if job.record.finished_at is not None),
            key=lambda job: job.record.finished_at or 0.0,
        )
        excess = len(self._jobs) - self._max_jobs + 1
        for index, job in enumerate(finished):
            if index < excess or now - (job.record.finished_at or now) > self._ttl:
                del self._jobs[job.record.id]


def _wake_all(job: _Job) -> None:
    """Wake the job's readers, on their own loops (any thread)."""
    waiters, job.waiters = job.waiters, []
    for waiter in waiters:
        waiter.get_loop().call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

"""The jobs a Celery worker runs, as their threads see Redis: local flags and an outbox, kept in step for all of
them at once on the worker's I/O loop.

Between decode steps a job thread asks whether it was cancelled or handed to another worker, and hands over its
pages' text deltas. Asked of Redis by each thread, that is a round trip per job several times a second; here one
MGET reads every running job's cancel flag and owner each `poll_s`, and one pipeline writes every job's pending
deltas each `flush_s`. A job's other events (a page finished, the end) are written when they happen, after its
pending deltas: its events keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from workers.events import JobEvent, TextDelta
from workers.redis_store import RedisJobStore

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RunningJob:
    job_id: str
    owner: str | None  # the worker holding the job, as last read
    cancel: bool = False
    outbox: deque[TextDelta] = field(default_factory=deque)  # filled by the job's thread, emptied on the loop


class RunningJobs:
    def __init__(self, store: RedisJobStore, worker_id: str, *, poll_s: float, flush_s: float) -> None:
        self.store = store
        self.worker_id = worker_id
        self.poll_s, self.flush_s = poll_s, flush_s
        self._jobs: dict[str, RunningJob] = {}
        self._lock = threading.Lock()  # `_jobs` changes on job threads, and is read on the loop
        self._writing = asyncio.Lock()  # one write at a time: a job's deltas reach Redis before its next event

    def start(self, job_id: str) -> RunningJob:
        """A job this worker has just claimed (any thread)."""
        job = RunningJob(job_id, owner=self.worker_id)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def finish(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    async def run(self) -> None:
        """Write the deltas every `flush_s` and read the flags every `poll_s`, until cancelled. Writes and reads
        fail apart (Redis may refuse writes and still answer reads); what fails is tried again at the next round,
        the deltas waiting in their outboxes meanwhile."""
        next_poll = 0.0
        failing: set[str] = set()
        while True:
            await asyncio.sleep(self.flush_s)
            await self._round("writing text deltas", self.flush(), failing)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.poll_s
                await self._round("reading cancel flags and owners", self.poll(), failing)

    @staticmethod
    async def _round(what: str, work: Coroutine[Any, Any, None], failing: set[str]) -> None:
        """Run one round of `what`, logging when it starts to fail and when it works again (not every round)."""
        try:
            await work
        except Exception as exc:
            if what not in failing:
                log.warning("running jobs: %s failed, trying again every round: %s", what, exc)
                failing.add(what)
            return
        if what in failing:
            log.info("running jobs: %s works again", what)
            failing.discard(what)

    async def poll(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        if not jobs:
            return
        for job, (cancel, owner) in zip(
            jobs, await self.store.cancels_and_owners([j.job_id for j in jobs]), strict=True
        ):
            job.cancel, job.owner = cancel, owner

    async def flush(self) -> None:
        """Every job's pending deltas, in one MULTI. A delta refused because another worker holds the job now
        marks it handed over."""
        async with self._writing:
            await self._flush(None)

    async def write(self, job: RunningJob, event: JobEvent) -> bool:
        """An event that changes the job's record, after the job's pending deltas; False when it was refused."""
        async with self._writing:
            await self._flush(job)
            return await self.store.append(job.job_id, event, owner=self.worker_id)

    async def _flush(self, only: RunningJob | None) -> None:
        if only is not None:
            jobs = [only]
        else:
            with self._lock:
                jobs = list(self._jobs.values())
        pending = [(job, _take(job.outbox)) for job in jobs]
        pending = [(job, deltas) for job, deltas in pending if deltas]
        if not pending:
            return
        batch = [(job.job_id, delta) for job, deltas in pending for delta in deltas]
        try:
            written = await self.store.append_deltas(batch, owner=self.worker_id)
        except BaseException:
            for job, deltas in pending:  # back in front of what came meanwhile, for the next try
                job.outbox.extendleft(reversed(deltas))
            raise
        refused = {job_id for (job_id, _), ok in zip(batch, written, strict=True) if not ok}
        for job, _ in pending:
            if job.job_id in refused:
                job.owner = None  # handed over: its thread stops at its next check


def _take(outbox: deque[TextDelta]) -> list[TextDelta]:
    """What the outbox holds now (its thread may go on adding meanwhile)."""
    taken = []
    while outbox:
        taken.append(outbox.popleft())
    return taken

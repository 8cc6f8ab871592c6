"""What both dispatchers do with jobs, over a job store and a job queue: submit, read, follow, cancel, delete.

Each dispatcher is these jobs over its own store and queue, plus what runs them: the embedded server's are the
memory store and its job threads (`workers.local`), Celery mode's the Redis store and Celery's queues
(`workers.celery_dispatch`), which adds shards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol, TypeVar

from ocr_engine.errors import OcrError, ServiceUnavailable
from ocr_engine.request import OcrRequest
from workers.events import JobCancelled, JobError, JobEvent, JobFailed
from workers.job_store import JobStore
from workers.jobs import JobRecord, JobState
from workers.replays import ReplayFilter

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobQueue(Protocol):
    """Hands stored jobs to whoever runs them: job threads of this process, or Celery workers."""

    async def put(self, record: JobRecord) -> None:
        """Queue a stored job; raises (ServiceUnavailable, say) when it cannot."""
        ...

    async def revoke(self, job_id: str) -> None:
        """A queued job was cancelled: it need not run (a run that starts anyway skips a finished job)."""
        ...


async def to_the_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile; the cancellation then lands at the
    caller's next await. A job half submitted (stored, not queued) would wait for a run that never comes."""
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


class Jobs:
    def __init__(self, store: JobStore, queue: JobQueue) -> None:
        self.store = store
        self.queue = queue

    async def submit(self, record: JobRecord, request: OcrRequest) -> JobRecord:
        """Store and queue a new job. It runs to its end even if the caller is cancelled meanwhile: the job then
        exists, as the job slot the caller reserved for it says (`to_the_end`)."""
        await to_the_end(self.create(record, request))
        return record

    async def create(self, record: JobRecord, request: OcrRequest) -> None:
        """Store a job, then queue it. One that cannot be queued fails, and its error is raised: no queued record
        (its pages counted in its queue) is left waiting for a run that never comes."""
        await self.store.create(record, request)
        try:
            await self.queue.put(record)
        except Exception as exc:
            log.warning("job %s: it could not be queued (%s); marking it failed", record.id, exc)
            reason = exc.message if isinstance(exc, OcrError) else str(exc)
            error = JobError.of(ServiceUnavailable(f"the job could not be queued ({reason}); submit it again"))
            try:
                await self.store.append(record.id, JobFailed(error=error))
            except Exception as store_exc:  # the store that refused the queue may refuse this too: it then expires
                log.warning("job %s: cannot mark it failed either: %s", record.id, store_exc)
            raise

    async def get(self, job_id: str) -> JobRecord | None:
        return await self.store.get(job_id)

    async def request(self, job_id: str) -> OcrRequest | None:
        return await self.store.request(job_id)

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events, a rerun's repeated text left out (see workers.replays)."""
        once = ReplayFilter()
        async for event in self.store.events(job_id):
            if (kept := once(event)) is not None:
                yield kept

    async def cancel(self, job_id: str) -> JobRecord | None:
        record = await self.store.get(job_id)
        if record is None:
            return None
        await self.cancel_job(record)
        return await self.store.get(job_id)

    async def cancel_job(self, record: JobRecord) -> None:
        """Flag a job that runs (it stops at its next check); cancel and revoke one that waits."""
        await self.store.request_cancel(record.id)
        if record.state is JobState.QUEUED:
            await self.store.append(record.id, JobCancelled())
            await self.queue.revoke(record.id)

    async def delete(self, job_id: str) -> bool:
        """Forget a job, cancelling it first if it is still running; False when it does not exist."""
        if await self.cancel(job_id) is None:
            return False
        await self.store.delete(job_id)
        return True

    async def queued_pages(self, background: bool) -> int:
        return await self.store.queued_pages(background)

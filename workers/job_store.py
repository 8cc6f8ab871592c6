"""Where jobs live: their records, requests (documents included), events and cancel flags.

One protocol, two stores: in memory for the embedded server (`workers.memory_store`), in Redis in Celery mode
(`workers.redis_store`, shared by every API process and worker). The dispatchers do the same over either
(`workers.job_service`). A record only changes by applying an event (`JobRecord.apply`), so no store can move a
job out of a terminal state, and an event refused by the record is not kept either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ocr_engine.request import OcrRequest
from workers.events import JobEvent
from workers.jobs import JobRecord


class JobStore(Protocol):
    async def create(self, record: JobRecord, request: OcrRequest | None) -> None:
        """Store a new job (`request` None: a job with no run of its own, a sharded job's parent); a queued job
        counts in its queue's pages until it starts."""
        ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def request(self, job_id: str) -> OcrRequest | None:
        """The job's request until it ends, or while it is kept if the job keeps its documents."""
        ...

    async def append(self, job_id: str, event: JobEvent) -> bool:
        """Add an event (applied to the record when it changes it); False, and nothing kept, when the job is gone
        or has ended."""
        ...

    def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """Every event from the first, following the job until its terminal event (or until it disappears)."""
        ...

    async def request_cancel(self, job_id: str) -> None:
        """Flag the job: its run stops at its next check."""
        ...

    async def delete(self, job_id: str) -> None: ...

    async def queued_pages(self, background: bool) -> int:
        """Pages of the jobs waiting to start in the background or the interactive queue."""
        ...

"""The dispatcher interface the API talks to; in-process (embedded) and Celery + Redis implement it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Protocol

import msgspec

from ocr_engine.request import OcrRequest
from workers.events import JobEvent
from workers.jobs import JobRecord
from workers.registry import SwitchResult, WorkerInfo


class Readiness(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class EngineStatus(msgspec.Struct, frozen=True, kw_only=True):
    readiness: Readiness
    message: str = ""
    queued: int = 0
    running: int = 0


class Dispatcher(Protocol):
    async def start(self) -> None:
        """Begin loading the model / connecting; returns at once (readiness says when it is done)."""
        ...

    async def close(self) -> None: ...

    def status(self) -> EngineStatus: ...

    async def submit(self, record: JobRecord, request: OcrRequest) -> JobRecord:
        """Store and queue a new job (`JobRecord.of` the request); its events can be read from the start with
        `events`. Background jobs may wait behind interactive ones. Returns the record as stored."""
        ...

    async def queued_pages(self, background: bool) -> int:
        """Pages of the jobs waiting (not yet started) in the background or the interactive queue."""
        ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def request(self, job_id: str) -> OcrRequest | None:
        """The job's request, documents included: until the job ends, or while it is kept for one that keeps
        its documents (`JobRecord.keeps_documents`)."""
        ...

    def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """Every event of the job from the first, ending with the terminal one."""
        ...

    async def delete(self, job_id: str) -> bool:
        """Forget a job (cancelling it first if it is still running); False when it does not exist."""
        ...

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Ask a job to stop: a queued job is cancelled at once, a running one between decode steps."""
        ...

    async def workers(self) -> list[WorkerInfo]:
        """The registry: every worker that sent a heartbeat recently, lost ones marked `lost`."""
        ...

    async def switch_device(self, device: str, worker_id: str | None = None) -> list[SwitchResult]:
        """Move the model of one worker (or every live one) to `device` (`cpu`, `gpu:N` or `auto`) after its
        current batch; jobs keep running (they wait for the move). Raises InvalidInput for an unknown worker or
        a device that none of the targeted workers has."""
        ...

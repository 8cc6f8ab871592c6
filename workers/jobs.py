"""Job records and their state machine: every state change is the result of applying an event."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

import msgspec

from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult
from workers.events import (
    JobCancelled,
    JobClaimed,
    JobCompleted,
    JobError,
    JobEvent,
    JobFailed,
    JobRequeued,
    JobStarted,
    PageFinished,
)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def new_job_id() -> str:
    return uuid.uuid4().hex


class Shard(msgspec.Struct, frozen=True, kw_only=True):
    """A child job of a sharded job: its pages start at the parent's page `first_page`."""

    job_id: str
    first_page: int


class Sharding(msgspec.Struct, frozen=True, kw_only=True):
    """A parent job's children, in page order, and the separator its pages are joined with (workers.shards)."""

    shards: tuple[Shard, ...]
    separator: str


class JobRecord(msgspec.Struct, kw_only=True):
    id: str = msgspec.field(default_factory=new_job_id)
    state: JobState = JobState.QUEUED
    created_at: float = msgspec.field(default_factory=time.time)
    finished_at: float | None = None
    pages_total: int = 0
    pages_done: int = 0
    result: OcrResult | None = None
    error: JobError | None = None
    background: bool = False
    worker: str | None = None  # the worker that claimed the job (Celery mode)
    meta: dict[str, Any] = msgspec.field(default_factory=dict)  # the API's own: what it rebuilds its replies from
    keeps_documents: bool = False  # its request outlives its run, for its page images (see `of`)
    sharding: Sharding | None = None  # a parent job: its children run its pages (Celery mode, workers.shards)

    @classmethod
    def of(
        cls,
        request: OcrRequest,
        *,
        background: bool = False,
        meta: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """The record of a new job for `request`; `job_id` is for callers that must know the id before the job
        exists (admission control reserves a slot under it). A background job with layout output keeps its
        documents while it is kept (its page images are what its boxes are drawn on); every other job lets them go
        at its end."""
        return cls(
            id=job_id or new_job_id(),
            pages_total=request.sequence_count,
            background=background,
            meta=meta or {},
            keeps_documents=background and request.output_format == "layout" and bool(request.documents),
        )

    def apply(self, event: JobEvent) -> bool:
        """Advance the record. An event after a terminal state changes nothing and is refused (False): a late
        cancel loses to completion, and no store keeps an event that comes after the end."""
        if self.state.terminal:
            return False
        match event:
            case JobClaimed(worker=worker):
                self.worker = worker
            case JobRequeued():  # its finished pages stay finished: the next run does not read them again
                self.state, self.worker = JobState.QUEUED, None
            case JobStarted(pages_total=total):
                self.state, self.pages_total = JobState.RUNNING, total
            case PageFinished(pages_done=done):
                self.pages_done = done
            case JobCompleted(result=result):
                self._finish(JobState.COMPLETED)
                self.result = result
            case JobFailed(error=error):
                self._finish(JobState.FAILED)
                self.error = error
            case JobCancelled():
                self._finish(JobState.CANCELLED)
        return True

    def _finish(self, state: JobState) -> None:
        self.state, self.finished_at = state, time.time()

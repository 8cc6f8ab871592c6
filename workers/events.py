"""Per-job events: the single source for sync replies, SSE streams and background polling."""

from __future__ import annotations

import msgspec

from ocr_engine.errors import ErrorKind, OcrError
from ocr_engine.results import FinishReason, OcrResult, PageResult, TokenLogprob

# Workers before the error kinds were typed sent these as `server` errors.
_UNAVAILABLE_BEFORE_KINDS = frozenset({"model_unavailable", "service_unavailable"})


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """A failure safe to show to the client. `kind` is an `ErrorKind` value, kept a string on the wire so that a
    kind from a newer worker reads as a server error instead of failing the event."""

    code: str
    message: str
    kind: str = ErrorKind.SERVER.value
    param: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> JobError:
        """Our domain errors keep their kind, code and message; anything else is hidden behind a generic one."""
        if isinstance(exc, OcrError):
            return cls(code=exc.code, message=exc.message, kind=exc.kind.value, param=exc.param)
        return cls(code="internal_error", message="internal error while running the job")

    @property
    def error_kind(self) -> ErrorKind:
        if self.kind == ErrorKind.SERVER and self.code in _UNAVAILABLE_BEFORE_KINDS:
            return ErrorKind.UNAVAILABLE
        return ErrorKind(self.kind) if self.kind in ErrorKind.__members__.values() else ErrorKind.SERVER


class JobEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all events."""


class JobStarted(JobEvent, frozen=True, tag="started"):
    pages_total: int


class JobClaimed(JobEvent, frozen=True, tag="claimed"):
    """A worker took the job (a job whose worker was lost is claimed again by the next one)."""

    worker: str


class JobRequeued(JobEvent, frozen=True, tag="requeued"):
    """The job's worker was lost: the job waits in the queue again and restarts from its first page."""

    worker: str
    reason: str


class TextDelta(JobEvent, frozen=True, tag="delta", omit_defaults=True):
    """`logprobs` are the tokens counted since the last delta, when the request asks for them (a delta may then
    carry tokens and no text)."""

    page: int
    text: str
    logprobs: list[TokenLogprob] = []


class PageFinished(JobEvent, frozen=True, tag="page"):
    """A page is done, sent as it finishes (pages of a job finish in any order; their text streams in order).
    `result` makes it durable: a job handed to another worker does not read this page again."""

    page: int
    pages_done: int
    pages_total: int
    finish_reason: FinishReason
    result: PageResult | None = None  # None from workers of earlier versions


class JobCompleted(JobEvent, frozen=True, tag="completed"):
    result: OcrResult


class JobFailed(JobEvent, frozen=True, tag="failed"):
    error: JobError


class JobCancelled(JobEvent, frozen=True, tag="cancelled"):
    pass


AnyEvent = JobStarted | JobClaimed | JobRequeued | TextDelta | PageFinished | JobCompleted | JobFailed | JobCancelled
TERMINAL_EVENTS = (JobCompleted, JobFailed, JobCancelled)

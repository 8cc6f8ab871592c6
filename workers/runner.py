"""Run one job and translate its progress into events; shared by every dispatcher."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ocr_engine.errors import JobCancelled, OcrError
from ocr_engine.pipeline import OcrListener
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, PageResult, TokenLogprob
from ocrserve.logs import log_context
from workers.events import (
    JobCancelled as JobCancelledEvent,
)
from workers.events import (
    JobCompleted,
    JobError,
    JobEvent,
    JobFailed,
    JobStarted,
    PageFinished,
    TextDelta,
)

log = logging.getLogger(__name__)


class OcrFunction(Protocol):
    """Runs a job's request (`ModelHost`): `finished` holds the pages an earlier run of the job finished."""

    def __call__(
        self,
        request: OcrRequest,
        listener: OcrListener,
        background: bool = False,
        finished: Mapping[int, PageResult] | None = None,
    ) -> OcrResult: ...


class JobHandedOver(Exception):
    """The job was handed to another worker (this one was taken for lost): stop, and write nothing more."""


class _EventListener(OcrListener):
    def __init__(self, emit: Callable[[JobEvent], None], cancelled: Callable[[], bool], pages_done: int) -> None:
        self.emit = emit
        self.is_cancelled = cancelled
        self.pages_done = pages_done

    def on_delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        self.emit(TextDelta(page=page, text=text, logprobs=logprobs))

    def on_page(self, page: PageResult, pages_total: int) -> None:
        self.pages_done += 1
        self.emit(
            PageFinished(
                page=page.index,
                pages_done=self.pages_done,
                pages_total=pages_total,
                finish_reason=page.finish_reason,
                result=page,
            )
        )

    def cancelled(self) -> bool:
        return self.is_cancelled()


def run_job(
    job_id: str,
    request: OcrRequest,
    ocr: OcrFunction,
    emit: Callable[[JobEvent], None],
    cancelled: Callable[[], bool],
    *,
    background: bool = False,
    request_id: str | None = None,
    finished: Mapping[int, PageResult] | None = None,
) -> None:
    """Emit started → deltas/pages → exactly one terminal event. Never raises. Records logged meanwhile carry
    the job id and `request_id` (the API request that submitted the job). `finished`: the pages an earlier run
    finished, not run again."""
    finished = finished or {}
    with log_context(request_id=request_id, job_id=job_id):
        started = time.perf_counter()
        try:
            if cancelled():
                raise JobCancelled("the job was cancelled before it started")
            emit(JobStarted(pages_total=request.sequence_count))
            result = ocr(request, _EventListener(emit, cancelled, len(finished)), background, finished)
        except JobCancelled:
            log.info("job %s (request %s): cancelled", job_id, request_id or "-")
            emit(JobCancelledEvent())
        except JobHandedOver as exc:
            log.warning("job %s (request %s): stopped, %s", job_id, request_id or "-", exc)
        except Exception as exc:
            if isinstance(exc, OcrError):
                log.info("job %s (request %s): failed: %s", job_id, request_id or "-", exc.message)
            else:
                log.exception("job %s (request %s) failed", job_id, request_id or "-")
            emit(JobFailed(error=JobError.of(exc)))
        else:
            log.info(
                "job %s (request %s): %d pages, %d prompt + %d completion tokens in %.2fs",
                job_id,
                request_id or "-",
                len(result.pages),
                result.usage.prompt_tokens,
                result.usage.completion_tokens,
                time.perf_counter() - started,
            )
            emit(JobCompleted(result=result))

"""One queued job on a Celery worker: claim it, run it, and stop it at its time limits.

The worker runs many jobs at once on threads; their Redis calls go to the worker's I/O loop (`WorkerIo`), and
between decode steps they read flags and fill an outbox that the loop keeps in step for all of them
(`workers.running_jobs`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from ocr_engine.errors import JobTimedOut
from workers.events import JobError, JobEvent, JobFailed, TextDelta
from workers.loop_thread import LoopThread
from workers.recovery import Resend, requeue_jobs_of
from workers.redis_store import RedisJobStore
from workers.registry import WorkerRegistry
from workers.reporter import WorkerReporter
from workers.runner import JobHandedOver, OcrFunction, run_job
from workers.running_jobs import RunningJobs
from workers.watchdog import HARD_LIMIT_GRACE_S, RESTART_EXIT, Watchdog

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkerIo:
    """What a worker's job threads reach Redis with: the store and registry, on the worker's I/O loop."""

    loop: LoopThread
    store: RedisJobStore
    registry: WorkerRegistry
    reporter: WorkerReporter
    resend: Resend
    running: RunningJobs

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.call(work)

    def hand_over_jobs(self, reason: str, keep: str | None = None) -> list[str]:
        """Requeue this worker's jobs (but `keep`) for other workers: it is about to exit."""
        return self.call(requeue_jobs_of(self.store, self.reporter.worker_id, reason, self.resend, keep=keep))


def execute(job_id: str, io: WorkerIo, ocr: OcrFunction, *, time_limit: float) -> None:
    """Run one queued job. A job that is gone, finished (cancelled while queued) or running on another live
    worker is skipped; a job whose worker died runs again, but not the pages its earlier runs finished. Past
    `time_limit` the job fails at its next check (soft limit); a minute later, if it is stuck in a call that
    never returns, the job is marked failed, the worker's other jobs are requeued for other workers, and the
    process exits (hard limit), to be restarted by its supervisor. One job never runs twice side by side: a
    message for a job already running here (delivered twice, or requeued while this worker was taken for lost)
    waits for that run to end, then claims the job as any message does (and is skipped if the run finished it)."""
    store, me = io.store, io.reporter.worker_id
    with io.reporter.running(job_id):
        record = io.call(store.claim(job_id, me, io.registry.is_alive))
        if record is None:
            current = io.call(store.get(job_id))
            why = "gone" if current is None else current.state.value
            log.info("job %s: skipped (%s%s)", job_id, why, f" on worker {current.worker}" if current else "")
            return
        request = io.call(store.request(job_id))
        if request is None:
            error = JobError(code="input_expired", message="the job's documents expired before a worker took it")
            io.call(store.append(job_id, JobFailed(error=error), owner=me))
            return
        finished = io.call(store.finished_pages(job_id))  # by an earlier run (a lost worker's): not read again
        if finished:
            log.info("job %s: %d of its pages were finished by an earlier run", job_id, len(finished))
        deadline = time.monotonic() + time_limit
        job = io.running.start(job_id)  # from here on, `finish` in the `finally` below

        def cancelled() -> bool:
            if time.monotonic() > deadline:
                raise JobTimedOut(f"the job ran longer than {time_limit:.0f} s (OCRSERVE_JOB_TIME_LIMIT)")
            if job.owner != me:
                raise JobHandedOver(f"worker {job.owner or 'another'} holds it now")
            return job.cancel

        def emit(event: JobEvent) -> None:
            io.reporter.observe(event)
            if isinstance(event, TextDelta):
                job.outbox.append(event)
            else:  # refused once the job was handed to another worker
                io.call(io.running.write(job, event))

        def stop_the_process() -> None:
            message = f"the job was stopped after {time_limit + HARD_LIMIT_GRACE_S:.0f} s; its worker restarts"
            emit(JobFailed(error=JobError.of(JobTimedOut(message))))
            log.error("job %s: hard time limit reached in a call that does not return; exiting", job_id)
            io.hand_over_jobs(f"worker {me} stopped: job {job_id} hit the hard time limit", keep=job_id)
            os._exit(RESTART_EXIT)

        try:
            with Watchdog(time_limit + HARD_LIMIT_GRACE_S, stop_the_process):
                run_job(
                    job_id,
                    request,
                    ocr,
                    emit,
                    cancelled,
                    background=record.background,
                    request_id=record.meta.get("request_id"),
                    finished=finished,
                )
        finally:
            io.running.finish(job_id)


def watch_the_model(stalled_for: Callable[[], float], limit: float, hand_over: Callable[[str], object]) -> None:
    """The hard limit of the model itself: one scheduler step stuck past `limit` (a call that never returns)
    hands every job of this worker over to other workers and exits the process, to be restarted."""
    while (stalled := stalled_for()) <= limit:
        time.sleep(min(5.0, limit / 4))
    log.error("a model step has run for %.0f s; requeueing this worker's jobs and exiting", stalled)
    hand_over(f"its worker's model hung for {stalled:.0f} s")
    os._exit(RESTART_EXIT)

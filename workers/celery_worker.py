"""A Celery worker process: load the model once, warm it up, then run jobs by id.

The task is a thin shim over `execute`, a plain function that tests call directly.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from celery.signals import worker_shutting_down
from PIL import Image

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.errors import JobTimedOut, OcrError
from ocr_engine.pipeline import OcrListener
from ocr_engine.request import OcrRequest, SamplingParams
from workers.celery_app import BACKGROUND_QUEUE, INTERACTIVE_QUEUE, RUN_JOB_TASK, make_celery, queue_for
from workers.engine_options import EngineOptions
from workers.events import JobError, JobEvent, JobFailed
from workers.heartbeat import Heartbeat
from workers.model_host import ModelHost
from workers.recovery import Resend, requeue_jobs_of, requeue_lost_jobs
from workers.redis_store import JobStore
from workers.registry import WorkerRegistry
from workers.reporter import WorkerReporter
from workers.runner import JobHandedOver, OcrFunction, run_job
from workers.watchdog import HARD_LIMIT_GRACE_S, Watchdog

log = logging.getLogger(__name__)
# The soft limit (checked between decode steps) comes first; this long after it, the process itself is stopped.


def execute(
    job_id: str,
    store: JobStore,
    ocr: OcrFunction,
    *,
    time_limit: float,
    reporter: WorkerReporter,
    registry: WorkerRegistry,
    resend: Resend,
) -> None:
    """Run one queued job. A job that is gone, finished (cancelled while queued) or running on another live
    worker is skipped; a job whose worker died runs again, but not the pages its earlier runs finished. Past
    `time_limit` the job fails at its next decode step (soft limit); a minute later, if it is stuck in a call
    that never returns, the job is marked failed, the worker's other jobs are requeued for other workers, and
    the process exits (hard limit), to be restarted by its supervisor. The worker runs many jobs at once, and
    one job must never run twice side by side: a message for a job already running here (delivered twice, or
    requeued while this worker was taken for lost) waits for that run to end, then claims the job as any
    message does (and is skipped if the run finished it)."""
    with reporter.running(job_id):  # waits while another run of this job is in flight here
        record = store.claim(job_id, reporter.worker_id, registry.is_alive)
        if record is None:
            current = store.get(job_id)
            why = "gone" if current is None else current.state.value
            log.info("job %s: skipped (%s%s)", job_id, why, f" on worker {current.worker}" if current else "")
            return
        request = store.load_request(job_id)
        if request is None:
            error = JobError(code="input_expired", message="the job's documents expired before a worker took it")
            store.append(job_id, JobFailed(error=error), owner=reporter.worker_id)
            return
        deadline = time.monotonic() + time_limit
        me = reporter.worker_id

        def cancelled() -> bool:
            if time.monotonic() > deadline:
                raise JobTimedOut(f"the job ran longer than {time_limit:.0f} s (OCRSERVE_JOB_TIME_LIMIT)")
            cancel, owner = store.cancel_and_owner(job_id)
            if owner != me:
                raise JobHandedOver(f"worker {owner or 'none'} holds it now")
            return cancel

        def emit(event: JobEvent) -> None:
            reporter.observe(event)
            store.append(job_id, event, owner=me)  # refused once the job was handed to another worker

        def stop_the_process() -> None:
            message = f"the job was stopped after {time_limit + HARD_LIMIT_GRACE_S:.0f} s; its worker restarts"
            emit(JobFailed(error=JobError.of(JobTimedOut(message))))
            log.error("job %s: hard time limit reached in a call that does not return; exiting", job_id)
            reason = f"worker {me} stopped: job {job_id} hit the hard time limit"
            requeue_jobs_of(store, me, reason, resend, keep=job_id)  # the others run again elsewhere, none lost
            os._exit(70)

        finished = store.finished_pages(job_id)  # by an earlier run (a lost worker's): not read again
        if finished:
            log.info("job %s: %d of its pages were finished by an earlier run", job_id, len(finished))
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


def watch_the_model(
    host: ModelHost, limit: float, requeue: Callable[[str, Resend], list[str]], *, resend: Resend
) -> None:
    """The hard limit of the model itself: one scheduler step stuck past `limit` (a call that never returns)
    requeues every job of this worker for other workers and exits the process, to be restarted."""
    while (stalled := host.engine.scheduler.stalled_for()) <= limit:
        time.sleep(min(5.0, limit / 4))
    log.error("a model step has run for %.0f s; requeueing this worker's jobs and exiting", stalled)
    requeue(f"its worker's model hung for {stalled:.0f} s", resend)
    os._exit(70)


def check_redis(redis_url: str, timeout: float = 3.0) -> str | None:
    """One PING with a short timeout; a sentence naming OCRSERVE_REDIS_URL when Redis cannot be reached."""
    shown = urlsplit(redis_url)._replace(netloc=urlsplit(redis_url).netloc.rpartition("@")[2]).geturl()
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return f"cannot reach Redis at {shown} (OCRSERVE_REDIS_URL): {exc}"
    return None


def warm_up(ocr: OcrFunction) -> None:
    """One tiny page through the whole pipeline, so the first real job does not pay for lazy initialisation."""
    page = Image.new("RGB", (64, 64), "white")
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    document = load_document(buffer.getvalue(), limits=DocumentLimits())
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=1))
    ocr(request, OcrListener(), False)


def run_worker(
    redis_url: str,
    options: EngineOptions,
    *,
    retention: int,
    time_limit: float,
    redelivery_timeout: int,
    heartbeat_interval: float,
    worker_timeout: float,
    concurrency: int = 16,
    log_level: str = "info",
) -> None:
    """Join the registry, load the model, warm it up, then consume both queues with up to `concurrency` jobs at
    once on threads (one process per GPU), their pages decoding together in the model's one batch. Heartbeats
    start before the model loads, so a loading worker shows as `loading`."""
    store = JobStore.connect(redis_url, retention)
    registry = WorkerRegistry(
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=heartbeat_interval + 10),
        worker_timeout,
    )
    app = make_celery(redis_url, redelivery_timeout=redelivery_timeout)

    def resend(job_id: str, background: bool) -> None:
        app.send_task(RUN_JOB_TASK, args=[job_id], task_id=job_id, queue=queue_for(background))

    reporter = WorkerReporter("celery", options.model)
    heartbeat = Heartbeat(
        reporter,
        registry,
        interval=heartbeat_interval,
        recover=functools.partial(requeue_lost_jobs, registry, store, resend),
    )
    heartbeat.start()
    try:
        try:
            host = ModelHost(options)
            warm_up(host)
        except OcrError as exc:
            reporter.failed(exc.message)
            raise
        reporter.ready(host)
        heartbeat.beat()
        watch = threading.Thread(
            target=watch_the_model,
            args=(host, time_limit + HARD_LIMIT_GRACE_S, functools.partial(requeue_jobs_of, store, reporter.worker_id)),
            kwargs={"resend": resend},
            name="ocr-model-watch",
            daemon=True,
        )
        watch.start()

        @app.task(name=RUN_JOB_TASK)
        def run_job_task(job_id: str) -> None:
            execute(job_id, store, host, time_limit=time_limit, reporter=reporter, registry=registry, resend=resend)

        log.info("worker %s ready: model %s on %s", reporter.worker_id, options.model, host.device_name)
        asked_to_stop = threading.Event()
        worker_shutting_down.connect(lambda **_: asked_to_stop.set(), weak=False)
        with contextlib.suppress(SystemExit):
            app.worker_main(
                [
                    "worker",
                    "--pool=threads",
                    f"--concurrency={max(1, concurrency)}",
                    f"--queues={INTERACTIVE_QUEUE},{BACKGROUND_QUEUE}",
                    f"--hostname=ocrserve-{reporter.worker_id}@%h",
                    f"--loglevel={log_level.upper()}",
                    "--without-gossip",
                    "--without-mingle",
                ]
            )
        if not asked_to_stop.is_set():  # Celery gave up on its own (it lost its broker): a failure, to be restarted
            log.error("the Celery worker stopped without being asked to (its broker lost?); exiting to be restarted")
            sys.exit(70)
    finally:
        heartbeat.stop()

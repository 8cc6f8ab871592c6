"""A Celery worker process: join the registry, load the model once, warm it up, then run jobs by id.

The task is a thin shim over `workers.job_execution.execute`, a plain function that tests call directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading

import redis
from celery.signals import worker_shutting_down
from PIL import Image

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.errors import OcrError, ServiceUnavailable
from ocr_engine.pipeline import CANCEL_POLL_S, FLUSH_S, OcrListener
from ocr_engine.request import OcrRequest, SamplingParams
from ocrserve.settings import Settings
from workers.celery_app import BACKGROUND_QUEUE, INTERACTIVE_QUEUE, RUN_JOB_TASK, CeleryQueue, make_celery
from workers.engine_options import EngineOptions
from workers.heartbeat import Heartbeat
from workers.job_execution import WorkerIo, execute, watch_the_model
from workers.loop_thread import LoopThread
from workers.model_host import ModelHost
from workers.recovery import requeue_lost_jobs
from workers.redis_client import RedisConnection, location
from workers.redis_store import RedisJobStore
from workers.registry import WorkerRegistry
from workers.reporter import WorkerReporter
from workers.runner import OcrFunction
from workers.running_jobs import RunningJobs
from workers.watchdog import HARD_LIMIT_GRACE_S, RESTART_EXIT

log = logging.getLogger(__name__)


def check_redis(redis_url: str, timeout: float = 3.0) -> str | None:
    """One PING on a new connection; a sentence naming OCRSERVE_REDIS_URL when Redis cannot be reached."""
    try:
        asyncio.run(RedisConnection(redis_url).ping(timeout, fresh=True))
    except ServiceUnavailable as exc:
        return exc.message
    except ValueError as exc:
        return f"OCRSERVE_REDIS_URL is not a Redis URL: {exc}"
    except redis.RedisError as exc:  # it answers, but refuses (an ACL, a replica in failover)
        return f"Redis at {location(redis_url)} (OCRSERVE_REDIS_URL) refused a PING: {exc}"
    return None


def warm_up(ocr: OcrFunction) -> None:
    """One tiny page through the whole pipeline, so the first real job does not pay for lazy initialisation."""
    page = Image.new("RGB", (64, 64), "white")
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    document = load_document(buffer.getvalue(), limits=DocumentLimits())
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=1))
    ocr(request, OcrListener(), False)


def run_worker(settings: Settings) -> None:
    """Join the registry, load the model, warm it up, then consume both queues with up to
    OCRSERVE_WORKER_CONCURRENCY jobs at once on threads (one process per GPU), their pages decoding together in
    the model's one batch. Heartbeats start before the model loads, so a loading worker shows as `loading`."""
    assert settings.redis_url is not None, "a worker needs OCRSERVE_REDIS_URL"
    loop = LoopThread()
    connection = RedisConnection(settings.redis_url, socket_timeout=settings.heartbeat_interval + 10)
    store = RedisJobStore(connection, settings.job_retention)
    registry = WorkerRegistry(connection, settings.worker_timeout)
    app = make_celery(settings.redis_url, redelivery_timeout=settings.redelivery_timeout)
    queue = CeleryQueue(app, connection.where)
    reporter = WorkerReporter("celery", settings.model)
    running = RunningJobs(store, reporter.worker_id, poll_s=CANCEL_POLL_S, flush_s=FLUSH_S)
    loop.spawn(running.run())
    worker = WorkerIo(
        loop=loop, store=store, registry=registry, reporter=reporter, resend=queue.resend, running=running
    )
    heartbeat = Heartbeat(
        reporter,
        registry,
        interval=settings.heartbeat_interval,
        recover=lambda: requeue_lost_jobs(registry, store, queue.resend),
    )
    loop.call(heartbeat.start())
    try:
        try:
            host = ModelHost(EngineOptions.of(settings))
            warm_up(host)
        except OcrError as exc:
            reporter.failed(exc.message)
            raise
        reporter.ready(host)
        loop.call(heartbeat.beat())
        threading.Thread(
            target=watch_the_model,
            args=(host.engine.scheduler.stalled_for, settings.job_time_limit + HARD_LIMIT_GRACE_S),
            kwargs={"hand_over": worker.hand_over_jobs},
            name="ocr-model-watch",
            daemon=True,
        ).start()

        @app.task(name=RUN_JOB_TASK)
        def run_job_task(job_id: str) -> None:
            execute(job_id, worker, host, time_limit=settings.job_time_limit)

        log.info("worker %s ready: model %s on %s", reporter.worker_id, settings.model, host.device_name)
        asked_to_stop = threading.Event()
        worker_shutting_down.connect(lambda **_: asked_to_stop.set(), weak=False)
        with contextlib.suppress(SystemExit):
            app.worker_main(
                [
                    "worker",
                    "--pool=threads",
                    f"--concurrency={max(1, settings.worker_concurrency)}",
                    f"--queues={INTERACTIVE_QUEUE},{BACKGROUND_QUEUE}",
                    f"--hostname=ocrserve-{reporter.worker_id}@%h",
                    f"--loglevel={settings.log_level.upper()}",
                    "--without-gossip",
                    "--without-mingle",
                ]
            )
        if not asked_to_stop.is_set():  # Celery gave up on its own (it lost its broker): a failure, to be restarted
            log.error("the Celery worker stopped without being asked to (its broker lost?); exiting to be restarted")
            sys.exit(RESTART_EXIT)
    finally:
        for closing in (heartbeat.stop(), connection.close()):
            try:
                loop.call(closing, timeout=10)
            except Exception as exc:
                log.warning("worker shutdown: %r", exc)
        loop.stop()

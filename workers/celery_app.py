"""The Celery application, configured for long GPU jobs: late acks, redelivery, prefetch 1, JSON messages; and the
job queue of Celery mode over it.

Messages carry only a job id: the request (documents included) waits in Redis under the job's keys.
"""

from __future__ import annotations

import asyncio

import kombu.exceptions
from celery import Celery

from ocr_engine.errors import ServiceUnavailable
from workers.jobs import JobRecord

INTERACTIVE_QUEUE = "ocr-interactive"
BACKGROUND_QUEUE = "ocr-background"
RUN_JOB_TASK = "ocrserve.run_job"


def make_celery(redis_url: str, *, redelivery_timeout: int) -> Celery:
    app = Celery("ocrserve", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=INTERACTIVE_QUEUE,
        # A message not acknowledged within this time (its worker died) is handed to another worker.
        broker_transport_options={"visibility_timeout": redelivery_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def queue_for(background: bool) -> str:
    """Background jobs get their own queue, so interactive requests are not stuck behind a 500-page PDF."""
    return BACKGROUND_QUEUE if background else INTERACTIVE_QUEUE


class CeleryQueue:
    """The job queue of Celery mode: each job a message on its queue, taken by any `ocrserve worker`. `where`
    names the broker in errors (`host:port`)."""

    def __init__(self, app: Celery, where: str) -> None:
        self.app = app
        self.where = where

    def send(self, job_id: str, background: bool) -> None:
        """Blocking (kombu): from a thread."""
        try:
            self.app.send_task(RUN_JOB_TASK, args=[job_id], task_id=job_id, queue=queue_for(background))
        except kombu.exceptions.OperationalError as exc:
            raise ServiceUnavailable(f"cannot queue the job at {self.where} (OCRSERVE_REDIS_URL): {exc}") from exc

    async def resend(self, job_id: str, background: bool) -> None:
        await asyncio.to_thread(self.send, job_id, background)

    async def put(self, record: JobRecord) -> None:
        await self.resend(record.id, record.background)

    async def revoke(self, job_id: str) -> None:
        await asyncio.to_thread(self.app.control.revoke, job_id)

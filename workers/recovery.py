"""Hand the jobs of lost workers back to the queue, so that another worker completes them.

Every live worker runs this from its heartbeat. The jobs come from the lost worker's job set (kept in the same
transactions as the records), not from its last report, and the requeue itself is conditional on the job still
being that worker's: when several workers notice the loss, exactly one requeues each job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from workers.redis_store import RedisJobStore
from workers.registry import WorkerRegistry

log = logging.getLogger(__name__)
# (job id, background?) -> put the job's message on its queue again
Resend = Callable[[str, bool], Awaitable[None]]


async def requeue_lost_jobs(registry: WorkerRegistry, store: RedisJobStore, resend: Resend) -> list[str]:
    """Requeue every job each lost worker held; returns the ids of the jobs requeued here. If the resend
    fails, the job stays queued and Celery's redelivery of its first message (OCRSERVE_REDELIVERY_TIMEOUT)
    still starts it."""
    requeued = []
    for worker in await registry.workers(prune=True):
        if worker.state == "lost":
            reason = f"worker {worker.worker_id} was lost ({worker.message})"
            requeued += await requeue_jobs_of(store, worker.worker_id, reason, resend)
    return requeued


async def requeue_jobs_of(
    store: RedisJobStore, worker_id: str, reason: str, resend: Resend, keep: str | None = None
) -> list[str]:
    """Requeue the jobs `worker_id` holds (but `keep`), each only if it still holds it; the ids requeued."""
    requeued = []
    for job_id in await store.held_by(worker_id):
        if job_id == keep or (record := await store.requeue(job_id, worker_id, reason)) is None:
            continue
        log.warning("job %s: requeued, %s", job_id, reason)
        await resend(job_id, record.background)
        requeued.append(job_id)
    return requeued

"""Hand the jobs of lost workers back to the queue, so that another worker completes them.

Every live worker runs this from its heartbeat thread; a claim per (worker, job) makes sure one of them acts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from workers.redis_store import JobStore
from workers.registry import WorkerRegistry

log = logging.getLogger(__name__)
# (job id, background?) -> put the job's message on its queue again
Resend = Callable[[str, bool], None]


def requeue_lost_jobs(registry: WorkerRegistry, store: JobStore, resend: Resend) -> list[str]:
    """Requeue the job each lost worker was running; returns the ids of the jobs requeued."""
    requeued = []
    for worker in registry.workers():
        job_id = worker.current_job
        if worker.state != "lost" or job_id is None or not registry.claim_recovery(worker.worker_id, job_id):
            continue
        reason = f"worker {worker.worker_id} was lost ({worker.message})"
        record = store.requeue(job_id, worker.worker_id, reason)
        if record is None:
            continue
        resend(job_id, record.background)
        requeued.append(job_id)
        log.warning("job %s: requeued, %s", job_id, reason)
    return requeued

"""Every Redis key of the job layer, in one place (admission control keeps its own under `ocrserve:admission:`).

Per job: its record, its request (documents included), its Stream of events, a cancel flag and its owner (the
worker that holds it). Per worker: the jobs it holds, its heartbeat's `alive` key and its command list. Per
queue: the index of the jobs waiting (`workers.redis_queue_index`). A key's format is part of the contract
between API processes and workers of different versions: change it only with a note on upgrading.
"""

from __future__ import annotations

JOB_PREFIX = "ocrserve:job:"
WORKERS_KEY = "ocrserve:workers"  # a hash: worker id → its last report (workers.registry)


def record_key(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}"


def request_key(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}:request"


def events_key(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}:events"


def cancel_key(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}:cancel"


def owner_key(job_id: str) -> str:
    """The worker that holds the job now; only it may write the job's events."""
    return f"{JOB_PREFIX}{job_id}:owner"


def job_keys(job_id: str) -> list[str]:
    return [record_key(job_id), request_key(job_id), events_key(job_id), cancel_key(job_id), owner_key(job_id)]


def worker_jobs_key(worker_id: str) -> str:
    """The jobs a worker holds, so that the jobs of a lost worker can be found and handed back."""
    return f"ocrserve:worker:{worker_id}:jobs"


def alive_key(worker_id: str) -> str:
    """Set by each heartbeat, expiring after the worker's own timeout: gone means the worker is lost."""
    return f"ocrserve:worker:{worker_id}:alive"


def control_key(worker_id: str) -> str:
    """The worker's list of device-switch commands."""
    return f"ocrserve:worker:{worker_id}:control"


def reply_key(command_id: str) -> str:
    """The replies to one device-switch command."""
    return f"ocrserve:switch:{command_id}"


def queued_keys(background: bool) -> tuple[str, str, str]:
    """The index of one queue's waiting jobs (see `workers.redis_queue_index`): a sorted set of job ids, a hash
    of their pages, and the sum of those pages."""
    queue = "background" if background else "interactive"
    return f"ocrserve:queued:{queue}", f"ocrserve:queued:{queue}:pages", f"ocrserve:queued:{queue}:total"

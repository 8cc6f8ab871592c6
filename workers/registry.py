"""The worker registry: what each worker reports in its heartbeats, and how a reader sees it.

A worker (a Celery worker process, or the embedded in-process worker) writes a `WorkerInfo` every
`heartbeat_interval` seconds. A reader marks a worker whose last heartbeat is older than `worker_timeout` as
`lost`; the jobs it was running are handed back to the queue.
"""

from __future__ import annotations

from typing import Literal

import msgspec

DeviceType = Literal["gpu", "cpu"]
WorkerState = Literal["loading", "ready", "switching", "failed", "lost"]


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A device a worker can run the model on; `name` is `cpu` or `gpu:N` as /v1/devices/switch takes it."""

    device_type: DeviceType
    device_id: int | None = None
    name: str
    description: str = ""
    memory_total_gb: float | None = None
    memory_free_gb: float | None = None


class WorkerInfo(msgspec.Struct, kw_only=True):
    worker_id: str
    host: str
    pid: int
    backend: Literal["celery", "embedded"]
    model: str
    family: str | None = None
    state: WorkerState = "loading"
    message: str = ""
    device: DeviceInfo | None = None
    dtype: str | None = None
    available_devices: list[DeviceInfo] = msgspec.field(default_factory=list)
    jobs_in_flight: int = 0
    current_job: str | None = None
    pages_per_second: float = 0.0
    started_at: float
    last_seen: float


class SwitchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One worker's answer to a device switch."""

    worker_id: str
    success: bool
    previous_device: str | None
    current_device: str | None
    message: str

"""/v1/devices: the worker registry with the devices the model can run on, and moving the model between them.

These are the API's own shapes: the registry's records (`workers.registry`) are the workers' heartbeat format,
free to change with the workers; `app.serving.devices` maps them onto these.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from workers.registry import DEVICE_NAME


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A device a worker can run the model on. `device` is the id /v1/devices/switch takes (`cpu`, `gpu:N`)."""

    device: str
    device_type: Literal["gpu", "cpu"]
    device_id: int | None = None
    name: str
    backend: str
    memory_total_gb: float | None = None
    memory_free_gb: float | None = None


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A worker as its last heartbeat described it (`lost` once its heartbeats stopped)."""

    worker_id: str
    host: str
    pid: int
    kind: Literal["celery", "embedded"]
    model: str
    family: str | None = None
    state: Literal["loading", "ready", "switching", "failed", "lost"] = "loading"
    message: str = ""
    device: DeviceInfo | None = None
    dtype: str | None = None
    available_devices: list[DeviceInfo] = msgspec.field(default_factory=list)
    jobs_in_flight: int = 0
    current_job: str | None = None  # the longest-running of them
    running_sequences: int = 0  # pages decoding in the model's batch, all jobs together
    waiting_sequences: int = 0  # pages prepared and waiting for a slot (or being prefilled)
    kv_cache_tokens: int = 0  # KV cache positions allocated now
    kv_cache_budget: int | None = None  # the most it may hold (None: bounded by the sequences alone)
    pages_done: int = 0
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


class AvailableDevice(DeviceInfo, frozen=True, kw_only=True):
    """A device of one host, with the live workers that can use it."""

    host: str
    workers: list[str]


class DevicesStatus(msgspec.Struct, kw_only=True):
    """`status`: ok (every worker ready), degraded (some lost, loading, switching or failed), unavailable (no
    live worker)."""

    status: Literal["ok", "degraded", "unavailable"]
    mode: Literal["embedded", "celery"]
    workers: list[WorkerInfo]
    available_devices: list[AvailableDevice]
    backends: list[str]


class SwitchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # documented as a pattern, checked by app.serving.devices, whose 400 names the forms
    device: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": DEVICE_NAME.pattern})]
    worker: str | None = None  # a worker id from /v1/devices/status; None = every live worker


class SwitchResponse(msgspec.Struct, kw_only=True):
    """`previous_device` and `current_device` are set when one worker was switched (see `workers` for each)."""

    success: bool
    device: str
    message: str
    previous_device: str | None
    current_device: str | None
    workers: list[SwitchResult]

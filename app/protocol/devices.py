"""/v1/devices: the worker registry with the devices the model can run on, and moving the model between them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from workers.registry import DEVICE_NAME, DeviceInfo, SwitchResult, WorkerInfo


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

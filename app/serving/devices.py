"""The device endpoints: the registry as clients see it, and switching the model's device."""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from app.context import AppContext
from app.protocol.devices import AvailableDevice, DevicesStatus, SwitchRequest, SwitchResponse, SwitchResult, WorkerInfo
from ocr_engine.errors import InvalidInput
from workers import registry
from workers.registry import DEVICE_NAME

Shape = TypeVar("Shape", bound=msgspec.Struct)


def as_shown(record: object, shape: type[Shape]) -> Shape:
    """A registry record in the API's shape of the same name (fields are matched by name, nested ones too)."""
    return msgspec.convert(record, shape, from_attributes=True)


def _overall(workers: list[registry.WorkerInfo]) -> Literal["ok", "degraded", "unavailable"]:
    live = [worker for worker in workers if worker.state != "lost"]
    if not live:
        return "unavailable"
    return "ok" if all(worker.state == "ready" for worker in workers) else "degraded"


def _devices(workers: list[registry.WorkerInfo]) -> list[AvailableDevice]:
    """Each host's devices once, with the live workers that can use them (memory as last reported)."""
    found: dict[tuple[str, str], AvailableDevice] = {}
    for worker in workers:
        if worker.state == "lost":
            continue
        for device in worker.available_devices:
            key = (worker.host, device.device)
            if key not in found:
                found[key] = AvailableDevice(**msgspec.structs.asdict(device), host=worker.host, workers=[])
            found[key].workers.append(worker.worker_id)
    return sorted(found.values(), key=lambda d: (d.host, d.device_type != "gpu", d.device_id or 0))


async def devices_status(ctx: AppContext) -> DevicesStatus:
    workers = await ctx.dispatcher.workers()
    devices = _devices(workers)
    return DevicesStatus(
        status=_overall(workers),
        mode="embedded" if ctx.settings.embedded else "celery",
        workers=[as_shown(worker, WorkerInfo) for worker in workers],
        available_devices=devices,
        backends=sorted({device.backend for device in devices}),
    )


async def switch_device(ctx: AppContext, data: SwitchRequest) -> SwitchResponse:
    if not DEVICE_NAME.fullmatch(data.device):
        raise InvalidInput(f"device must be cpu, gpu:N or auto, got {data.device!r}", param="device")
    results = [
        as_shown(result, SwitchResult) for result in await ctx.dispatcher.switch_device(data.device, data.worker)
    ]
    switched = sum(result.success for result in results)
    single = results[0] if len(results) == 1 else None
    return SwitchResponse(
        success=switched == len(results),
        device=data.device,
        message=single.message if single else f"{switched} of {len(results)} workers switched to {data.device}",
        previous_device=single.previous_device if single else None,
        current_device=single.current_device if single else None,
        workers=results,
    )

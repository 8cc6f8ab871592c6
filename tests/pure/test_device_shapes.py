"""/v1/devices answers in the API's own shapes (app.protocol.devices), mapped from the registry's records, which are
the workers' heartbeat format: a field renamed on one side must be mapped on purpose, not lost."""

from __future__ import annotations

import msgspec
import pytest

from app.protocol import devices as api
from app.serving.devices import as_shown
from workers import registry


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (registry.DeviceInfo, api.DeviceInfo),
        (registry.WorkerInfo, api.WorkerInfo),
        (registry.SwitchResult, api.SwitchResult),
    ],
)
def test_the_api_shapes_carry_every_field_of_the_records(record: type, shown: type) -> None:
    assert record.__struct_fields__ == shown.__struct_fields__, "map a renamed field in app.serving.devices"


def test_a_worker_report_is_shown_whole() -> None:
    gpu = registry.DeviceInfo(device="gpu:0", device_type="gpu", device_id=0, name="H200", backend="cuda 13.0")
    report = registry.WorkerInfo(
        worker_id="w1",
        host="h",
        pid=7,
        kind="celery",
        model="m",
        state="ready",
        device=gpu,
        available_devices=[gpu],
        jobs_in_flight=2,
        kv_cache_budget=4096,
        started_at=1.0,
        last_seen=2.0,
    )
    shown = as_shown(report, api.WorkerInfo)
    assert isinstance(shown.device, api.DeviceInfo)
    assert msgspec.json.encode(shown) == msgspec.json.encode(report)

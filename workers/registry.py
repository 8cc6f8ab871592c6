"""The worker registry: what each worker reports in its heartbeats, and how readers see it.

A Celery worker writes a `WorkerInfo` every `heartbeat_interval` seconds, together with an `alive` key that
expires after its own `worker_timeout`: a worker whose key has expired is `lost` (no clocks of two machines
compared), and the jobs it held are handed back to the queue (`workers.recovery`). The embedded worker is
described on demand instead (it lives and dies with the API process).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Literal, cast

import msgspec

from ocr_engine.errors import InvalidInput
from workers.redis_client import RedisConnection
from workers.redis_keys import WORKERS_KEY, alive_key

DeviceType = Literal["gpu", "cpu"]
WorkerState = Literal["loading", "ready", "switching", "failed", "lost"]
log = logging.getLogger(__name__)
# Lost workers stay listed for this many worker timeouts, then their entries are dropped.
LOST_LISTED_TIMEOUTS = 20


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A device a worker can run the model on. `device` is the id /v1/devices/switch takes (`cpu`, `gpu:N`)."""

    device: str
    device_type: DeviceType
    device_id: int | None = None
    name: str
    backend: str
    memory_total_gb: float | None = None
    memory_free_gb: float | None = None


class WorkerInfo(msgspec.Struct, kw_only=True):
    worker_id: str
    host: str
    pid: int
    kind: Literal["celery", "embedded"]
    model: str
    family: str | None = None
    state: WorkerState = "loading"
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

    def as_lost(self, now: float) -> WorkerInfo:
        """This report as readers show it once the worker's heartbeats stopped: its job was handed back."""
        message = f"no heartbeat since {now - self.last_seen:.0f} s ago"
        return msgspec.structs.replace(
            self,
            state="lost",
            message=message,
            jobs_in_flight=0,
            current_job=None,
            running_sequences=0,
            waiting_sequences=0,
        )


class SwitchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One worker's answer to a device switch."""

    worker_id: str
    success: bool
    previous_device: str | None
    current_device: str | None
    message: str


DEVICE_NAME = re.compile(r"^(cpu|auto|gpu:\d+)$")
"""What a device switch may ask for: `cpu`, `gpu:N` or `auto`."""


def choose_device(requested: str, available: list[DeviceInfo]) -> str:
    """`cpu`, `gpu:N` or `auto` (the first GPU, else the CPU) resolved against a worker's devices; InvalidInput
    naming the devices that exist when there is no such device."""
    names = [device.device for device in available]
    if requested == "auto":
        return next((name for name in names if name.startswith("gpu:")), "cpu")
    if requested not in names:
        raise InvalidInput(
            f"device {requested!r} is not available; available devices: {', '.join(names) or 'none'} or auto",
            param="device",
        )
    return requested


_info_decoder = msgspec.msgpack.Decoder(WorkerInfo)
_encoder = msgspec.msgpack.Encoder()


def _decode(worker_id: bytes, blob: bytes) -> WorkerInfo | None:
    try:
        return _info_decoder.decode(blob)
    except msgspec.DecodeError as exc:  # written by another version: skip it, do not fail the whole registry
        log.warning("unreadable registry entry for worker %s: %s", worker_id.decode(errors="replace"), exc)
        return None


def _as_seen(raw: dict[bytes, bytes], alive: list[int], timeout: float) -> tuple[list[WorkerInfo], list[bytes]]:
    """(the workers as readers show them, ids of entries lost for so long that they should be dropped)."""
    now = time.time()
    workers, stale = [], []
    for (worker_id, blob), is_alive in zip(raw.items(), alive, strict=True):
        info = _decode(worker_id, blob)
        if info is None:
            continue
        if not is_alive:
            info = info.as_lost(now)
            if now - info.last_seen > LOST_LISTED_TIMEOUTS * timeout:
                stale.append(worker_id)
                continue
        workers.append(info)
    workers.sort(key=lambda w: (w.host, w.started_at, w.worker_id))
    return workers, stale


class WorkerRegistry:
    """Heartbeats in one Redis hash (worker id → report), written by workers, read by workers and the API."""

    def __init__(self, connection: RedisConnection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout
        self._client = connection.client

    async def beat(self, info: WorkerInfo) -> None:
        with self.connection.reachable():
            async with self._client.pipeline() as pipe:
                pipe.hset(WORKERS_KEY, info.worker_id, _encoder.encode(info))
                pipe.set(alive_key(info.worker_id), b"1", px=int(self.timeout * 1000))
                await pipe.execute()

    async def remove(self, worker_id: str) -> None:
        """A worker that stops cleanly leaves the registry: it is gone, not lost."""
        with self.connection.reachable():
            async with self._client.pipeline() as pipe:
                pipe.hdel(WORKERS_KEY, worker_id)
                pipe.delete(alive_key(worker_id))
                await pipe.execute()

    async def workers(self, *, prune: bool = False) -> list[WorkerInfo]:
        """Every worker that reported, the lost ones as `lost`. With `prune` (a worker's heartbeat does it; the
        API only reads), entries lost for LOST_LISTED_TIMEOUTS timeouts are dropped."""
        with self.connection.reachable():
            raw = cast(dict[bytes, bytes], await self._client.hgetall(WORKERS_KEY))
            async with self._client.pipeline(transaction=False) as pipe:
                for worker_id in raw:
                    pipe.exists(alive_key(worker_id.decode()))
                alive = await pipe.execute()
            workers, stale = _as_seen(raw, alive, self.timeout)
            if prune and stale:
                await self._client.hdel(WORKERS_KEY, *stale)
        return workers

    async def is_alive(self, worker_id: str) -> bool:
        with self.connection.reachable():
            return bool(await self._client.exists(alive_key(worker_id)))

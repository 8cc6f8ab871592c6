"""The worker registry: what each worker reports in its heartbeats, and how readers see it.

A worker (a Celery worker process, or the embedded in-process worker) writes a `WorkerInfo` every
`heartbeat_interval` seconds. Readers mark a worker whose last heartbeat is older than `worker_timeout` as
`lost`; the job it was running is handed back to the queue (`workers.recovery`).
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec
import redis
import redis.asyncio as aioredis

from ocr_engine.errors import InvalidInput

DeviceType = Literal["gpu", "cpu"]
WorkerState = Literal["loading", "ready", "switching", "failed", "lost"]
WORKERS_KEY = "ocrserve:workers"
COMMAND_TTL_S = 3600
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
    current_job: str | None = None
    pages_done: int = 0
    pages_per_second: float = 0.0
    started_at: float
    last_seen: float

    def seen_as(self, now: float, timeout: float) -> WorkerInfo:
        """This report as a reader sees it at `now`: `lost` once the last heartbeat is older than `timeout`."""
        if now - self.last_seen <= timeout:
            return self
        return msgspec.structs.replace(self, state="lost", message=f"no heartbeat for {now - self.last_seen:.0f} s")


class SwitchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One worker's answer to a device switch."""

    worker_id: str
    success: bool
    previous_device: str | None
    current_device: str | None
    message: str


def choose_device(requested: str, available: list[DeviceInfo]) -> str:
    """`cpu`, `gpu:N` or `auto` (the first GPU, else the CPU) resolved against a worker's devices; InvalidInput
    naming the devices that exist when there is no such device."""
    names = [device.device for device in available]
    if requested == "auto":
        return next((name for name in names if name.startswith("gpu:")), "cpu")
    if requested not in names:
        raise InvalidInput(
            f"device {requested!r} is not available; available devices: {', '.join(names)} or auto", param="device"
        )
    return requested


class SwitchCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Sent to one worker's control list; its `SwitchResult` goes to the command's reply list."""

    command_id: str
    device: str


def control_key(worker_id: str) -> str:
    return f"ocrserve:worker:{worker_id}:control"


def reply_key(command_id: str) -> str:
    return f"ocrserve:switch:{command_id}"


def recovered_key(worker_id: str, job_id: str) -> str:
    return f"ocrserve:worker:{worker_id}:recovered:{job_id}"


_info_decoder = msgspec.msgpack.Decoder(WorkerInfo)
_command_decoder = msgspec.msgpack.Decoder(SwitchCommand)
_result_decoder = msgspec.msgpack.Decoder(SwitchResult)
_encoder = msgspec.msgpack.Encoder()


def _decode_all(raw: dict[bytes, bytes], timeout: float) -> tuple[list[WorkerInfo], list[str]]:
    """(workers as seen now, ids of entries lost for so long that they should be dropped)."""
    now = time.time()
    workers, stale = [], []
    for worker_id, blob in raw.items():
        info = _info_decoder.decode(blob).seen_as(now, timeout)
        if now - info.last_seen > LOST_LISTED_TIMEOUTS * timeout:
            stale.append(worker_id.decode())
        else:
            workers.append(info)
    workers.sort(key=lambda w: (w.host, w.started_at, w.worker_id))
    return workers, stale


class WorkerRegistry:
    """Heartbeats in one Redis hash (worker id → report), written by workers, read by workers and the API."""

    def __init__(self, client: redis.Redis, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

    def beat(self, info: WorkerInfo) -> None:
        self.client.hset(WORKERS_KEY, info.worker_id, _encoder.encode(info))

    def remove(self, worker_id: str) -> None:
        """A worker that stops cleanly leaves the registry: it is gone, not lost."""
        self.client.hdel(WORKERS_KEY, worker_id)

    def workers(self) -> list[WorkerInfo]:
        workers, stale = _decode_all(self.client.hgetall(WORKERS_KEY), self.timeout)
        if stale:
            self.client.hdel(WORKERS_KEY, *stale)
        return workers

    def is_alive(self, worker_id: str) -> bool:
        blob = self.client.hget(WORKERS_KEY, worker_id)
        return blob is not None and _info_decoder.decode(blob).seen_as(time.time(), self.timeout).state != "lost"

    def claim_recovery(self, worker_id: str, job_id: str) -> bool:
        """True for exactly one caller per (lost worker, job): several live workers may notice the loss."""
        return bool(self.client.set(recovered_key(worker_id, job_id), b"1", nx=True, ex=COMMAND_TTL_S))

    def next_command(self, worker_id: str, timeout: float) -> SwitchCommand | None:
        """Wait up to `timeout` seconds for a command to this worker."""
        popped = self.client.blpop([control_key(worker_id)], timeout=timeout)
        return None if popped is None else _command_decoder.decode(popped[1])

    def reply(self, command_id: str, result: SwitchResult) -> None:
        with self.client.pipeline() as pipe:
            pipe.rpush(reply_key(command_id), _encoder.encode(result))
            pipe.expire(reply_key(command_id), COMMAND_TTL_S)
            pipe.execute()


async def read_workers(client: aioredis.Redis, timeout: float) -> list[WorkerInfo]:
    """The registry for the API (read only: dropping stale entries is the workers' job)."""
    workers, _ = _decode_all(await client.hgetall(WORKERS_KEY), timeout)
    return workers


async def send_switch(client: aioredis.Redis, worker_ids: list[str], command: SwitchCommand) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.rpush(control_key(worker_id), _encoder.encode(command))
            pipe.expire(control_key(worker_id), COMMAND_TTL_S)
        await pipe.execute()


async def switch_replies(client: aioredis.Redis, command_id: str, count: int, timeout: float) -> list[SwitchResult]:
    """Up to `count` replies to a switch command, waiting at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    replies: list[SwitchResult] = []
    while len(replies) < count and (left := deadline - time.monotonic()) > 0:
        # short waits: a blocking call must end well within the client's socket timeout
        popped = await client.blpop([reply_key(command_id)], timeout=min(max(left, 0.01), 10.0))
        if popped is not None:
            replies.append(_result_decoder.decode(popped[1]))
    return replies

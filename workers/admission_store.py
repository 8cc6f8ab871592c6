"""Counters behind admission control: each client's recent requests and the jobs it holds slots for.

Two implementations behind one Protocol: in memory (embedded mode, one API process) and in Redis (Celery mode,
shared by every API process). Clients are opaque ids chosen by the caller (never a raw API key). Whether a job
still holds its slot is decided by `is_stale` from the job's record, which the caller looks up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

from workers.jobs import JobRecord
from workers.redis_store import redis_location, unavailable_as_503

# A reserved job whose record does not exist yet keeps its slot this long (the submit between is fast).
RESERVATION_GRACE_S = 60.0
KEY_PREFIX = "ocrserve:admission:"
# How often the memory store looks for clients to forget (each look goes over every client it holds).
_SWEEP_EVERY_S = 60.0


class AdmissionStore(Protocol):
    async def hit(self, client: str, hit_id: str, limit: int, window: float) -> float:
        """Count a request, under the caller's new `hit_id`, in the client's sliding window of `window` seconds:
        0 when it is admitted, else the seconds until the oldest request counted leaves the window (and the
        refused request is not counted)."""
        ...

    async def release_hit(self, client: str, hit_id: str) -> None:
        """Take a counted request out of the window again: one that another limit then refused."""
        ...

    async def reservations(self, client: str) -> dict[str, float | None]:
        """The client's reserved job ids, each with the seconds since it was reserved; None once confirmed."""
        ...

    async def reserve(self, client: str, job_id: str, limit: int, stale: Collection[str] = ()) -> bool:
        """Atomically: drop the `stale` job ids, then reserve `job_id` if fewer than `limit` remain."""
        ...

    async def confirm(self, client: str, job_id: str) -> None:
        """The job's record exists now: from here on a missing record means the job was deleted or expired."""
        ...

    async def release(self, client: str, job_id: str) -> None: ...

    async def close(self) -> None: ...


def is_stale(record: JobRecord | None, age: float | None) -> bool:
    """Whether a reservation no longer holds a slot: its job ended, or its record is gone (deleted, expired, or
    never created: still missing RESERVATION_GRACE_S after the reservation)."""
    if record is None:
        return age is None or age > RESERVATION_GRACE_S
    return record.state.terminal


@dataclass
class _Slots:
    """One client's reservations in the memory store."""

    jobs: dict[str, float | None] = field(default_factory=dict)  # job id → reserved at (None: confirmed)
    last_reserved: float = 0.0

    def live(self, now: float, ttl: float) -> bool:
        """Whether the client reserved within the retention `ttl` (else every job it reserved has expired)."""
        return now - self.last_reserved <= ttl


class MemoryAdmissionStore:
    """For one API process. Every method runs on the event loop without awaiting, so each one is atomic. Like
    the Redis keys, a client's reservations are forgotten `ttl` seconds (the job retention) after its last one,
    so the tables only hold the clients of the last window or retention, not every address ever seen."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, ttl: float = 86400.0) -> None:
        self._clock = clock
        self._ttl = ttl
        self._hits: dict[str, dict[str, float]] = {}  # client → hit id → time, oldest first
        self._slots: dict[str, _Slots] = {}
        self._hits_swept = self._slots_swept = clock()

    async def hit(self, client: str, hit_id: str, limit: int, window: float) -> float:
        now = self._clock()
        if now - self._hits_swept > window:
            self._sweep_hits(now - window)
        hits = self._hits.setdefault(client, {})
        while hits and next(iter(hits.values())) <= now - window:
            del hits[next(iter(hits))]
        if len(hits) >= limit:
            return next(iter(hits.values())) + window - now
        hits[hit_id] = now
        return 0.0

    async def release_hit(self, client: str, hit_id: str) -> None:
        hits = self._hits.get(client, {})
        hits.pop(hit_id, None)
        if not hits:
            self._hits.pop(client, None)

    def _sweep_hits(self, cutoff: float) -> None:
        """Forget clients with no request in the window."""
        self._hits = {
            client: hits for client, hits in self._hits.items() if hits and next(reversed(hits.values())) > cutoff
        }
        self._hits_swept = self._clock()

    def _sweep_slots(self, now: float) -> None:
        """Forget clients whose last reservation is older than the retention: their jobs have expired since."""
        if now - self._slots_swept > _SWEEP_EVERY_S:
            self._slots = {client: slots for client, slots in self._slots.items() if slots.live(now, self._ttl)}
            self._slots_swept = now

    async def reservations(self, client: str) -> dict[str, float | None]:
        now = self._clock()
        slots = self._slots.get(client)
        if slots is None or not slots.live(now, self._ttl):
            return {}
        return {job_id: None if at is None else now - at for job_id, at in slots.jobs.items()}

    async def reserve(self, client: str, job_id: str, limit: int, stale: Collection[str] = ()) -> bool:
        now = self._clock()
        self._sweep_slots(now)
        slots = self._slots.get(client)
        if slots is None or not slots.live(now, self._ttl):
            slots = self._slots[client] = _Slots()
        for stale_id in stale:
            slots.jobs.pop(stale_id, None)
        if len(slots.jobs) >= limit:
            return False
        slots.jobs[job_id] = slots.last_reserved = now
        return True

    async def confirm(self, client: str, job_id: str) -> None:
        slots = self._slots.get(client)
        if slots is not None and job_id in slots.jobs:
            slots.jobs[job_id] = None

    async def release(self, client: str, job_id: str) -> None:
        slots = self._slots.get(client)
        if slots is None:
            return
        slots.jobs.pop(job_id, None)
        if not slots.jobs:
            del self._slots[client]

    async def close(self) -> None:
        pass


# KEYS[1]: the client's window, a sorted set of request ids scored by their time (ms, Redis's clock, so API
# processes on machines with different clocks agree). ARGV: limit, window (ms), the request's new id.
# Returns 0 when the request is counted, else the milliseconds until the oldest one leaves the window.
_HIT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
    return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# KEYS[1]: the client's reservations, a sorted set of job ids scored by when they were reserved (s, Redis's
# clock; 0 once confirmed). ARGV: limit, key time to live (s), the new job id, then the stale job ids.
# Returns 1 when the job id was added, 0 when the client is at its limit.
_RESERVE = """
if #ARGV > 3 then
    redis.call('ZREM', KEYS[1], unpack(ARGV, 4))
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(now[2]) / 1e6, ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_CONFIRMED = 0


class RedisAdmissionStore:
    """Shared by the API processes of one Redis. Checks and updates run as Lua scripts, so two processes can
    never both admit the last request or job a client has room for. Every key expires: the window after a
    minute without requests, the reservations `ttl` seconds (the job retention) after the last one."""

    def __init__(self, client: aioredis.Redis, *, ttl: int, where: str = "redis") -> None:
        self._client = client
        self._ttl = ttl
        self._where = where
        self._hit = client.register_script(_HIT)
        self._reserve = client.register_script(_RESERVE)

    @classmethod
    def connect(cls, url: str, *, ttl: int) -> RedisAdmissionStore:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        return cls(client, ttl=ttl, where=redis_location(url))

    @staticmethod
    def _window_key(client: str) -> str:
        return f"{KEY_PREFIX}rpm:{client}"

    @staticmethod
    def _jobs_key(client: str) -> str:
        return f"{KEY_PREFIX}jobs:{client}"

    async def hit(self, client: str, hit_id: str, limit: int, window: float) -> float:
        with unavailable_as_503(self._where):
            wait_ms = await self._hit(keys=[self._window_key(client)], args=[limit, int(window * 1000), hit_id])
        return int(wait_ms) / 1000

    async def release_hit(self, client: str, hit_id: str) -> None:
        with unavailable_as_503(self._where):
            await self._client.zrem(self._window_key(client), hit_id)

    async def reservations(self, client: str) -> dict[str, float | None]:
        with unavailable_as_503(self._where):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zrange(self._jobs_key(client), 0, -1, withscores=True)
                pipe.time()
                members, (seconds, micros) = await pipe.execute()
        now = seconds + micros / 1e6
        return {job_id.decode(): None if at == _CONFIRMED else now - at for job_id, at in members}

    async def reserve(self, client: str, job_id: str, limit: int, stale: Collection[str] = ()) -> bool:
        with unavailable_as_503(self._where):
            added = await self._reserve(keys=[self._jobs_key(client)], args=[limit, self._ttl, job_id, *stale])
        return bool(added)

    async def confirm(self, client: str, job_id: str) -> None:
        with unavailable_as_503(self._where):
            await self._client.zadd(self._jobs_key(client), {job_id: _CONFIRMED}, xx=True)

    async def release(self, client: str, job_id: str) -> None:
        with unavailable_as_503(self._where):
            await self._client.zrem(self._jobs_key(client), job_id)

    async def close(self) -> None:
        await self._client.aclose()

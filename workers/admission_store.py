"""Counters behind admission control: each client's recent requests and the jobs it holds slots for.

Two implementations behind one Protocol: in memory (embedded mode, one API process) and in Redis (Celery mode,
shared by every API process). Clients are opaque ids chosen by the caller (never a raw API key). Whether a job
still holds its slot is decided by `is_stale` from the job's record, which the caller looks up.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from typing import Protocol

import redis.asyncio as aioredis

from workers.jobs import JobRecord
from workers.redis_store import redis_location, unavailable_as_503

# A reserved job whose record does not exist yet keeps its slot this long (the submit between is fast).
RESERVATION_GRACE_S = 60.0
KEY_PREFIX = "ocrserve:admission:"


class AdmissionStore(Protocol):
    async def hit(self, client: str, limit: int, window: float) -> float:
        """Count a request in the client's sliding window of `window` seconds: 0 when it is admitted, else the
        seconds until the oldest request counted leaves the window (and the refused request is not counted)."""
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


class MemoryAdmissionStore:
    """For one API process. Every method runs on the event loop without awaiting, so each one is atomic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._jobs: dict[str, dict[str, float | None]] = {}  # client → job id → reserved at (None: confirmed)
        self._swept = clock()

    async def hit(self, client: str, limit: int, window: float) -> float:
        now = self._clock()
        if now - self._swept > window:
            self._sweep(now - window)
        hits = self._hits.setdefault(client, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return hits[0] + window - now
        hits.append(now)
        return 0.0

    def _sweep(self, cutoff: float) -> None:
        """Forget clients with no request in the window, so the table does not grow with every address seen."""
        self._hits = {client: hits for client, hits in self._hits.items() if hits and hits[-1] > cutoff}
        self._swept = self._clock()

    async def reservations(self, client: str) -> dict[str, float | None]:
        now = self._clock()
        jobs = self._jobs.get(client, {})
        return {job_id: None if at is None else now - at for job_id, at in jobs.items()}

    async def reserve(self, client: str, job_id: str, limit: int, stale: Collection[str] = ()) -> bool:
        jobs = self._jobs.setdefault(client, {})
        for stale_id in stale:
            jobs.pop(stale_id, None)
        if len(jobs) >= limit:
            return False
        jobs[job_id] = self._clock()
        return True

    async def confirm(self, client: str, job_id: str) -> None:
        jobs = self._jobs.get(client, {})
        if job_id in jobs:
            jobs[job_id] = None

    async def release(self, client: str, job_id: str) -> None:
        jobs = self._jobs.get(client, {})
        jobs.pop(job_id, None)
        if not jobs:
            self._jobs.pop(client, None)

    async def close(self) -> None:
        pass


# KEYS[1]: the client's window, a sorted set of request ids scored by their time (ms, Redis's clock, so API
# processes on machines with different clocks agree). ARGV: limit, window (ms), a new request id.
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

    async def hit(self, client: str, limit: int, window: float) -> float:
        with unavailable_as_503(self._where):
            wait_ms = await self._hit(
                keys=[self._window_key(client)], args=[limit, int(window * 1000), uuid.uuid4().hex]
            )
        return int(wait_ms) / 1000

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

"""Admission counters in Redis, shared by the API processes of one Redis (Celery mode)."""

from __future__ import annotations

from collections.abc import Collection

from workers.redis_client import RedisConnection

KEY_PREFIX = "ocrserve:admission:"

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

    def __init__(self, connection: RedisConnection, *, ttl: int) -> None:
        self._connection = connection
        self._client = connection.client
        self._ttl = ttl
        self._hit = self._client.register_script(_HIT)
        self._reserve = self._client.register_script(_RESERVE)

    @staticmethod
    def _window_key(client: str) -> str:
        return f"{KEY_PREFIX}rpm:{client}"

    @staticmethod
    def _jobs_key(client: str) -> str:
        return f"{KEY_PREFIX}jobs:{client}"

    async def hit(self, client: str, hit_id: str, limit: int, window: float) -> float:
        with self._connection.reachable():
            wait_ms = await self._hit(keys=[self._window_key(client)], args=[limit, int(window * 1000), hit_id])
        return int(wait_ms) / 1000

    async def release_hit(self, client: str, hit_id: str) -> None:
        with self._connection.reachable():
            await self._client.zrem(self._window_key(client), hit_id)

    async def reservations(self, client: str) -> dict[str, float | None]:
        with self._connection.reachable():
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zrange(self._jobs_key(client), 0, -1, withscores=True)
                pipe.time()
                members, (seconds, micros) = await pipe.execute()
        now = seconds + micros / 1e6
        return {job_id.decode(): None if at == _CONFIRMED else now - at for job_id, at in members}

    async def reserve(self, client: str, job_id: str, limit: int, stale: Collection[str] = ()) -> bool:
        with self._connection.reachable():
            added = await self._reserve(keys=[self._jobs_key(client)], args=[limit, self._ttl, job_id, *stale])
        return bool(added)

    async def confirm(self, client: str, job_id: str) -> None:
        with self._connection.reachable():
            await self._client.zadd(self._jobs_key(client), {job_id: _CONFIRMED}, xx=True)

    async def release(self, client: str, job_id: str) -> None:
        with self._connection.reachable():
            await self._client.zrem(self._jobs_key(client), job_id)

"""One PING to Redis on a fresh connection, for /health?verbose=1: it sees what a new client would see."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from workers.redis_store import redis_location, unavailable_as_503


async def ping_redis(url: str, timeout: float) -> float:
    """Milliseconds to connect and PING; ServiceUnavailable (naming OCRSERVE_REDIS_URL) when Redis does not
    answer within `timeout` seconds."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        with unavailable_as_503(redis_location(url)):
            start = time.perf_counter()
            await client.ping()
            return (time.perf_counter() - start) * 1000
    finally:
        await client.aclose()

"""One PING to Redis on a fresh connection, for /health?verbose=1: it sees what a new client would see."""

from __future__ import annotations

import time

import redis.asyncio as aioredis


async def ping_redis(url: str, timeout: float) -> float:
    """Milliseconds to connect and PING; a Redis or socket error (or a timeout after `timeout` s) propagates."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        start = time.perf_counter()
        await client.ping()
        return (time.perf_counter() - start) * 1000
    finally:
        await client.aclose()

"""The one Redis client of a process: jobs, the worker registry, switch commands and admission control share it
(Celery keeps its own connections for its queues). An unreachable Redis is a ServiceUnavailable naming
OCRSERVE_REDIS_URL, shown as `host:port`: the URL itself may carry a password."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

from ocr_engine.errors import ServiceUnavailable

CONNECT_TIMEOUT_S = 3.0


def location(url: str) -> str:
    """`host:port` of a Redis URL, for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class RedisConnection:
    """A client of `url` whose calls wait at most `socket_timeout` seconds (more than any blocking read it
    makes); the connections bind to the event loop that first uses them."""

    def __init__(self, url: str, *, socket_timeout: float = 30.0) -> None:
        self.url = url
        self.where = location(url)
        self.client = aioredis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=socket_timeout
        )

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        """Raise a Redis that cannot be reached as ServiceUnavailable."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError) as exc:
            reason = str(exc) or "no answer in time"
            raise ServiceUnavailable(f"cannot reach Redis at {self.where} (OCRSERVE_REDIS_URL): {reason}") from exc

    async def ping(self, timeout: float, *, fresh: bool = False) -> float:
        """Milliseconds for a PING (with `fresh`, on a new connection: what a new client would see, connecting
        included); ServiceUnavailable when Redis does not answer within `timeout` seconds."""
        client = (
            aioredis.Redis.from_url(self.url, socket_connect_timeout=timeout, socket_timeout=timeout)
            if fresh
            else self.client
        )
        try:
            with self.reachable():
                start = time.perf_counter()
                await asyncio.wait_for(client.ping(), timeout)
                return (time.perf_counter() - start) * 1000
        finally:
            if fresh:
                await client.aclose()

    async def close(self) -> None:
        await self.client.aclose()

"""GET / (what this server is) and GET /health (whether it can take jobs, and with `verbose` the checks behind it)."""

from __future__ import annotations

from typing import Literal

import msgspec

CheckStatus = Literal["ok", "error"]


class ServerInfo(msgspec.Struct, kw_only=True):
    name: str = "ocrserve"
    version: str
    model: str
    backend: Literal["embedded", "celery"]
    docs_url: str = "/docs"
    openapi_url: str = "/openapi.json"


class Load(msgspec.Struct, kw_only=True):
    """vLLM's `server_load` (jobs queued or running), and the live workers' running batches added up."""

    server_load: int
    running_sequences: int = 0
    waiting_sequences: int = 0
    kv_cache_tokens: int = 0


class RedisCheck(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A PING on a new connection; `latency_ms` covers connecting and the round trip."""

    status: CheckStatus
    latency_ms: float | None = None
    message: str | None = None


class WorkersCheck(msgspec.Struct, kw_only=True):
    """`ok` while at least one worker is ready; `states` counts the workers in each state."""

    status: CheckStatus
    message: str
    total: int = 0
    states: dict[str, int] = msgspec.field(default_factory=dict)


class HealthChecks(msgspec.Struct, kw_only=True, omit_defaults=True):
    workers: WorkersCheck
    redis: RedisCheck | None = None  # Celery mode only


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`status` is `ready` (200), `loading` or `failed` (503); `timestamp` is ISO 8601 UTC."""

    status: Literal["ready", "loading", "failed"]
    message: str
    model_ready: bool
    version: str
    timestamp: str
    checks: HealthChecks | None = None

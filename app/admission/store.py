"""Counters behind admission control: each client's recent requests and the jobs it holds slots for.

Two implementations behind one Protocol: in memory (embedded mode, one API process) and in Redis (Celery mode,
shared by every API process: `app.admission.redis_store`). Clients are opaque ids chosen by the caller (never a
raw API key). Whether a job still holds its slot is decided by `is_stale` from the job's record, which the
caller looks up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from workers.jobs import JobRecord

# A reserved job whose record does not exist yet keeps its slot this long (the submit between is fast).
RESERVATION_GRACE_S = 60.0
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

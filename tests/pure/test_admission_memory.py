"""Admission counters in memory (embedded mode): the sliding window on a fake clock, clients forgotten once
their window or retention has passed, reservations under concurrency, and which reservations are stale."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.admission.store import RESERVATION_GRACE_S, MemoryAdmissionStore, is_stale
from workers.jobs import JobRecord, JobState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def new_hit() -> str:
    return uuid.uuid4().hex


def test_the_memory_window_slides() -> None:
    clock = FakeClock()
    store = MemoryAdmissionStore(clock)

    async def at(t: float) -> float:
        clock.now = 1000.0 + t
        return await store.hit("c", new_hit(), 3, 60.0)

    async def scenario() -> None:
        assert [await at(0), await at(10), await at(20)] == [0.0, 0.0, 0.0]
        assert await at(30) == pytest.approx(30.0)  # the hit at 0 leaves the window at 60
        assert await at(60.5) == 0.0
        assert await at(61) == pytest.approx(9.0)  # now the hit at 10 is the oldest
        assert await at(200) == 0.0

    asyncio.run(scenario())


def test_the_memory_store_forgets_idle_clients() -> None:
    clock = FakeClock()
    store = MemoryAdmissionStore(clock)

    async def scenario() -> None:
        for index in range(50):
            await store.hit(f"client-{index}", new_hit(), 1, 60.0)
        clock.now += 61
        await store.hit("last", new_hit(), 1, 60.0)
        assert set(store._hits) == {"last"}

    asyncio.run(scenario())


def test_the_memory_store_forgets_the_reservations_of_clients_gone_longer_than_the_retention() -> None:
    """As the Redis keys expire: every job reserved before has expired by then. Without it the table keeps every
    address that ever held a job (keyless mode)."""
    clock = FakeClock()
    store = MemoryAdmissionStore(clock, ttl=600)

    async def scenario() -> None:
        for index in range(50):
            assert await store.reserve(f"client-{index}", "job", 1)
            await store.confirm(f"client-{index}", "job")
        clock.now += 300
        assert await store.reserve("recent", "job", 1)
        clock.now += 301
        assert await store.reservations("client-0") == {}
        assert await store.reserve("last", "job", 1)
        assert set(store._slots) == {"recent", "last"}
        assert set(await store.reservations("recent")) == {"job"}

    asyncio.run(scenario())


def test_concurrent_memory_reservations_respect_the_limit() -> None:
    async def scenario() -> None:
        store = MemoryAdmissionStore()
        results = await asyncio.gather(*(store.reserve("c", f"job-{i}", 3) for i in range(40)))
        assert sum(results) == 3

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("state", "age", "stale"),
    [
        (JobState.QUEUED, None, False),
        (JobState.RUNNING, None, False),
        (JobState.QUEUED, 5.0, False),
        (JobState.COMPLETED, None, True),
        (JobState.FAILED, None, True),
        (JobState.CANCELLED, 1.0, True),
        (None, 1.0, False),  # reserved, the job is being created
        (None, RESERVATION_GRACE_S + 1, True),  # reserved, but its job never appeared
        (None, None, True),  # confirmed, then deleted or expired
    ],
)
def test_which_reservations_are_stale(state: JobState | None, age: float | None, stale: bool) -> None:
    record = None if state is None else JobRecord(id="j", state=state)
    assert is_stale(record, age) is stale

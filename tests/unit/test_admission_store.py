"""Admission counters: the sliding request window (and requests given back), job reservations and their pruning,
in memory and in a private redis-server; and the pages waiting per queue that backpressure reads (Redis job store,
embedded), jobs that expire while they wait included."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from ocr_engine.errors import ModelUnavailable
from ocr_engine.request import OcrRequest, SamplingParams
from workers.admission_store import (
    KEY_PREFIX,
    RESERVATION_GRACE_S,
    AdmissionStore,
    MemoryAdmissionStore,
    RedisAdmissionStore,
    is_stale,
)
from workers.events import JobCancelled, JobClaimed, JobRequeued, JobStarted
from workers.jobs import JobRecord, JobState
from workers.local import LocalDispatcher
from workers.redis_store import AsyncJobReader, JobStore, record_key

TTL = 600
# the background queue's job ids, their pages, the sum of their pages
BACKGROUND_KEYS = ("ocrserve:queued:background", "ocrserve:queued:background:pages", "ocrserve:queued:background:total")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[AdmissionStore], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def with_store(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Runs a scenario against a fresh store of each kind (Redis: a private redis-server for this module)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            store: AdmissionStore = MemoryAdmissionStore() if url is None else RedisAdmissionStore.connect(url, ttl=TTL)
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run


def new_client() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def new_hit() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- the request window


def test_the_window_admits_the_limit_then_says_when_a_slot_frees(with_store: Callable[[Scenario], None]) -> None:
    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        assert [await store.hit(client, new_hit(), 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = await store.hit(client, new_hit(), 3, 60.0)
        assert 0 < wait <= 60
        assert await store.hit(client, new_hit(), 3, 60.0) > 0, "a refused request must not reset or free the window"
        assert await store.hit(other, new_hit(), 3, 60.0) == 0.0, "each client has its own window"

    with_store(scenario)


def test_a_request_given_back_frees_its_place_in_the_window(with_store: Callable[[Scenario], None]) -> None:
    """What admission control does with a request that a job slot or a queue then refuses."""

    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        hits = [new_hit() for _ in range(3)]
        assert [await store.hit(client, hit, 3, 60.0) for hit in hits] == [0.0, 0.0, 0.0]
        assert await store.hit(other, hits[1], 3, 60.0) == 0.0
        await store.release_hit(client, hits[1])
        await store.release_hit(client, hits[1])  # giving back twice frees one place, not two
        await store.release_hit(client, "never-counted")
        assert await store.hit(client, new_hit(), 3, 60.0) == 0.0
        assert await store.hit(client, new_hit(), 3, 60.0) > 0
        await store.release_hit(other, hits[1])
        assert [await store.hit(other, new_hit(), 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]

    with_store(scenario)


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


def test_the_redis_window_slides_and_its_key_expires(redis_url: str) -> None:
    async def scenario() -> None:
        store = RedisAdmissionStore.connect(redis_url, ttl=TTL)
        client = new_client()
        try:
            assert await store.hit(client, new_hit(), 2, 1.0) == 0.0
            assert await store.hit(client, new_hit(), 2, 1.0) == 0.0
            wait = await store.hit(client, new_hit(), 2, 1.0)
            assert 0 < wait <= 1.0
            with redis.Redis.from_url(redis_url) as plain:
                assert 0 < plain.pttl(f"{KEY_PREFIX}rpm:{client}") <= 1000
            await asyncio.sleep(wait)
            for _ in range(50):  # Redis's clock and ours need not tick alike: ask again until it admits
                if await store.hit(client, new_hit(), 2, 1.0) == 0.0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the window never freed a slot")
        finally:
            await store.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- job reservations


def test_reservations_up_to_the_limit_then_pruned_confirmed_released(
    with_store: Callable[[Scenario], None],
) -> None:
    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        assert await store.reserve(client, "a", 2)
        assert await store.reserve(client, "b", 2)
        assert not await store.reserve(client, "c", 2)
        held = await store.reservations(client)
        assert set(held) == {"a", "b"} and all(age is not None and 0 <= age < 5 for age in held.values())

        await store.confirm(client, "a")
        assert (await store.reservations(client))["a"] is None
        assert await store.reserve(client, "c", 2, stale=["a"]), "a stale reservation frees its slot"
        assert set(await store.reservations(client)) == {"b", "c"}

        await store.release(client, "b")
        await store.confirm(client, "b")  # confirming a released reservation must not bring it back
        assert set(await store.reservations(client)) == {"c"}
        assert await store.reserve(other, "x", 1), "each client has its own slots"
        assert await store.reservations(new_client()) == {}

    with_store(scenario)


def test_two_api_processes_never_both_take_the_last_slot(redis_url: str) -> None:
    """Many reservations at once from two stores (two connection pools, as two API processes have)."""

    async def scenario() -> None:
        stores = [RedisAdmissionStore.connect(redis_url, ttl=TTL) for _ in range(2)]
        client = new_client()
        try:
            attempts = [stores[i % 2].reserve(client, f"job-{i}", 3) for i in range(40)]
            assert sum(await asyncio.gather(*attempts)) == 3
            assert len(await stores[0].reservations(client)) == 3
            with redis.Redis.from_url(redis_url) as plain:
                assert 0 < plain.ttl(f"{KEY_PREFIX}jobs:{client}") <= TTL
        finally:
            for store in stores:
                await store.close()

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


# ---------------------------------------------------------------- pages waiting per queue


@pytest.fixture
def queue_db(redis_url: str) -> Iterator[str]:
    """A Redis database of this module's server, emptied for each test: its queues start empty."""
    url = redis_url.rpartition("/")[0] + "/1"
    with redis.Redis.from_url(url) as plain:
        plain.flushdb()
    yield url


def queued(url: str) -> tuple[int, int]:
    """(background, interactive) pages waiting, as the API's reader sees them (on this call's own event loop)."""

    async def both() -> tuple[int, int]:
        reader = AsyncJobReader.connect(url)
        try:
            return await reader.queued_pages(True), await reader.queued_pages(False)
        finally:
            await reader.close()

    return asyncio.run(both())


REQUEST = OcrRequest(prompt="Hi", sampling=SamplingParams(max_tokens=1))


def test_the_redis_job_store_counts_the_pages_waiting_in_each_queue(queue_db: str) -> None:
    store = JobStore.connect(queue_db, ttl=TTL)
    try:
        long_job, short_job, chat, deleted = (
            JobRecord.new(5, background=True),
            JobRecord.new(2, background=True),
            JobRecord.new(1),
            JobRecord.new(4, background=True),
        )
        for record in (long_job, short_job, chat, deleted):
            store.create(record, REQUEST)
        assert queued(queue_db) == (11, 1)
        assert all(0 < store.client.ttl(key) <= TTL for key in BACKGROUND_KEYS)
        store.delete(deleted.id)
        assert queued(queue_db) == (7, 1), "a deleted job leaves its queue"
        store.append(long_job.id, JobClaimed(worker="w1"))
        assert queued(queue_db) == (7, 1), "claiming does not start the job"
        store.append(long_job.id, JobStarted(pages_total=5))
        assert queued(queue_db) == (2, 1)
        store.append(long_job.id, JobRequeued(worker="w1", reason="lost"))
        assert queued(queue_db) == (7, 1), "a requeued job waits again"
        store.append(short_job.id, JobCancelled())
        store.append(chat.id, JobStarted(pages_total=1))
        assert queued(queue_db) == (5, 0)
        store.append(short_job.id, JobCancelled())  # already terminal: no change
        store.append(long_job.id, JobCancelled())
        assert queued(queue_db) == (0, 0)
        assert not any(store.client.exists(key) for key in BACKGROUND_KEYS), "an empty queue leaves no keys"
        store.delete(short_job.id)  # a job that left its queue before: nothing more to take away
        assert queued(queue_db) == (0, 0)
    finally:
        store.client.close()


def wait_until_expired(store: JobStore, job_ids: list[str]) -> None:
    """Until Redis has expired the jobs' records (a few seconds at most: the store's ttl is that short)."""
    for _ in range(200):
        if not any(store.client.exists(record_key(job_id)) for job_id in job_ids):
            return
        time.sleep(0.05)
    raise AssertionError("the records never expired")


def test_jobs_whose_records_expire_while_they_wait_stop_counting(queue_db: str) -> None:
    """A worker outage longer than the retention: jobs that expired in the queue must not hold it full while newer
    jobs keep arriving (a count whose key each new job keeps alive never loses their pages)."""
    brief, store = JobStore.connect(queue_db, ttl=2), JobStore.connect(queue_db, ttl=TTL)
    try:
        waited, requeued = JobRecord.new(5, background=True), JobRecord.new(3, background=True)
        for record in (waited, requeued):
            brief.create(record, REQUEST)
        brief.append(requeued.id, JobStarted(pages_total=3))
        brief.append(requeued.id, JobRequeued(worker="w1", reason="lost"))
        fresh = JobRecord.new(1, background=True)
        store.create(fresh, REQUEST)
        wait_until_expired(store, [waited.id, requeued.id])
        assert queued(queue_db) == (1, 0)
        store.delete(waited.id)  # dropped already: deleting it takes nothing more away
        assert queued(queue_db) == (1, 0)
        store.create(JobRecord.new(2, background=True), REQUEST)
        assert queued(queue_db) == (3, 0)
        jobs, pages, _ = BACKGROUND_KEYS
        assert store.client.zcard(jobs) == store.client.hlen(pages) == 2, "expired jobs are dropped, not kept"
    finally:
        brief.client.close()
        store.client.close()


def test_the_embedded_dispatcher_counts_the_pages_of_queued_jobs(tmp_path: Path) -> None:
    gate = threading.Event()

    def load_never() -> None:  # the model "loads" until the test ends, so every job stays queued
        gate.wait(60)
        raise ModelUnavailable("the test is over")

    async def scenario() -> None:
        dispatcher = LocalDispatcher(load_never, model="tiny")
        await dispatcher.start()
        try:
            request = OcrRequest(prompt="Hi", sampling=SamplingParams(max_tokens=1))
            first = await dispatcher.submit(request, background=True, job_id="chosen-id")
            assert first.id == "chosen-id"
            await dispatcher.submit(request, background=True)
            await dispatcher.submit(request)
            assert (await dispatcher.queued_pages(True), await dispatcher.queued_pages(False)) == (2, 1)
            await dispatcher.cancel(first.id)
            assert await dispatcher.queued_pages(True) == 1
        finally:
            gate.set()
            await dispatcher.close()

    asyncio.run(scenario())

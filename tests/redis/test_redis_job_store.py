"""The Redis job store against a private redis-server: the pages waiting per queue that backpressure reads (jobs
that expire while they wait included), and a job's stream followed to its end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis

from ocr_engine.request import OcrRequest, SamplingParams
from workers.events import JobCancelled, JobClaimed, JobRequeued, JobStarted, TextDelta
from workers.jobs import JobRecord
from workers.redis_client import RedisConnection
from workers.redis_keys import queued_keys, record_key
from workers.redis_store import RedisJobStore

pytestmark = pytest.mark.anyio
TTL = 600
BACKGROUND_KEYS = queued_keys(True)
REQUEST = OcrRequest(prompt="Hi", sampling=SamplingParams(max_tokens=1))


@pytest.fixture
def queue_db(redis_url: str) -> str:
    """A Redis database of this module's server, emptied for each test: its queues start empty."""
    url = redis_url.rpartition("/")[0] + "/1"
    with redis.Redis.from_url(url) as plain:
        plain.flushdb()
    return url


@asynccontextmanager
async def job_store(url: str, ttl: int = TTL) -> AsyncIterator[RedisJobStore]:
    connection = RedisConnection(url)
    try:
        yield RedisJobStore(connection, ttl)
    finally:
        await connection.close()


async def queued(store: RedisJobStore) -> tuple[int, int]:
    """(background, interactive) pages waiting."""
    return await store.queued_pages(True), await store.queued_pages(False)


async def test_the_store_counts_the_pages_waiting_in_each_queue(queue_db: str) -> None:
    async with job_store(queue_db) as store:
        client = store.connection.client
        long_job, short_job, chat, deleted = (
            JobRecord(pages_total=5, background=True),
            JobRecord(pages_total=2, background=True),
            JobRecord(pages_total=1),
            JobRecord(pages_total=4, background=True),
        )
        for record in (long_job, short_job, chat, deleted):
            await store.create(record, REQUEST)
        assert await queued(store) == (11, 1)
        assert all(0 < ttl <= TTL for ttl in [await client.ttl(key) for key in BACKGROUND_KEYS])
        await store.delete(deleted.id)
        assert await queued(store) == (7, 1), "a deleted job leaves its queue"
        await store.append(long_job.id, JobClaimed(worker="w1"))
        assert await queued(store) == (7, 1), "claiming does not start the job"
        await store.append(long_job.id, JobStarted(pages_total=5))
        assert await queued(store) == (2, 1)
        await store.append(long_job.id, JobRequeued(worker="w1", reason="lost"))
        assert await queued(store) == (7, 1), "a requeued job waits again"
        await store.append(short_job.id, JobCancelled())
        await store.append(chat.id, JobStarted(pages_total=1))
        assert await queued(store) == (5, 0)
        assert not await store.append(short_job.id, JobCancelled()), "already terminal: refused"
        await store.append(long_job.id, JobCancelled())
        assert await queued(store) == (0, 0)
        assert not any([await client.exists(key) for key in BACKGROUND_KEYS]), "an empty queue leaves no keys"
        await store.delete(short_job.id)  # a job that left its queue before: nothing more to take away
        assert await queued(store) == (0, 0)


async def wait_until_expired(store: RedisJobStore, job_ids: list[str]) -> None:
    """Until Redis has expired the jobs' records (a few seconds at most: the store's ttl is that short)."""
    for _ in range(200):
        if not any([await store.connection.client.exists(record_key(job_id)) for job_id in job_ids]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the records never expired")


async def test_jobs_whose_records_expire_while_they_wait_stop_counting(queue_db: str) -> None:
    """A worker outage longer than the retention: jobs that expired in the queue must not hold it full while newer
    jobs keep arriving (a count whose key each new job keeps alive never loses their pages)."""
    async with job_store(queue_db, ttl=2) as brief, job_store(queue_db) as store:
        waited, requeued = JobRecord(pages_total=5, background=True), JobRecord(pages_total=3, background=True)
        for record in (waited, requeued):
            await brief.create(record, REQUEST)
        await brief.append(requeued.id, JobStarted(pages_total=3))
        await brief.append(requeued.id, JobRequeued(worker="w1", reason="lost"))
        fresh = JobRecord(pages_total=1, background=True)
        await store.create(fresh, REQUEST)
        await wait_until_expired(store, [waited.id, requeued.id])
        assert await queued(store) == (1, 0)
        await store.delete(waited.id)  # dropped already: deleting it takes nothing more away
        assert await queued(store) == (1, 0)
        await store.create(JobRecord(pages_total=2, background=True), REQUEST)
        assert await queued(store) == (3, 0)
        jobs, pages, _ = BACKGROUND_KEYS
        client = store.connection.client
        assert await client.zcard(jobs) == await client.hlen(pages) == 2, "expired jobs are dropped, not kept"


async def test_a_reader_follows_a_job_to_its_end_and_stops_when_it_is_deleted(queue_db: str) -> None:
    async with job_store(queue_db) as store:
        record = JobRecord(pages_total=1)
        await store.create(record, REQUEST)
        seen: list[object] = []

        async def follow() -> None:
            async for event in store.events(record.id, block_ms=50):
                seen.append(event)

        reader = asyncio.create_task(follow())
        await store.append(record.id, JobStarted(pages_total=1))
        await store.append(record.id, TextDelta(page=0, text="Hello"))
        await store.append(record.id, JobCancelled())
        await asyncio.wait_for(reader, 10)
        assert [type(event).__name__ for event in seen] == ["JobStarted", "TextDelta", "JobCancelled"]
        assert await store.request(record.id) is None, "a finished job lets its documents go"

        gone = JobRecord(pages_total=1)
        await store.create(gone, REQUEST)
        reader = asyncio.create_task(follow_until_gone(store, gone.id))
        await store.delete(gone.id)
        assert await asyncio.wait_for(reader, 10) == []


async def follow_until_gone(store: RedisJobStore, job_id: str) -> list[object]:
    return [event async for event in store.events(job_id, block_ms=50)]

"""The worker registry and job ownership in a private Redis: liveness by expiring keys, claims, fencing of a
worker taken for lost, recovery of its jobs, and a heartbeat that outlives its errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis

from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, Usage
from workers.events import AnyEvent, JobCompleted, JobStarted, PageFinished, TextDelta
from workers.heartbeat import Heartbeat
from workers.jobs import JobRecord, JobState
from workers.recovery import requeue_jobs_of, requeue_lost_jobs
from workers.redis_client import RedisConnection
from workers.redis_keys import WORKERS_KEY, events_key
from workers.redis_store import RedisJobStore
from workers.registry import WorkerInfo, WorkerRegistry
from workers.reporter import WorkerReporter
from workers.running_jobs import RunningJobs

pytestmark = pytest.mark.anyio
TIMEOUT_S = 0.3


@pytest.fixture
async def connection(redis_url: str) -> AsyncIterator[RedisConnection]:
    with redis.Redis.from_url(redis_url) as plain:
        plain.flushdb()
    connection = RedisConnection(redis_url)
    yield connection
    await connection.close()


def report(worker_id: str) -> WorkerInfo:
    now = time.time()
    return WorkerInfo(
        worker_id=worker_id, host="h", pid=1, kind="celery", model="m", state="ready", started_at=now, last_seen=now
    )


async def wait_lost(registry: WorkerRegistry, worker_id: str) -> None:
    deadline = time.monotonic() + 10
    while await registry.is_alive(worker_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def new_job(store: RedisJobStore) -> str:
    record = JobRecord(pages_total=2)
    await store.create(record, OcrRequest(prompt="Hi"))
    return record.id


async def test_a_worker_is_lost_when_its_alive_key_expires_whatever_the_clocks_say(
    connection: RedisConnection,
) -> None:
    registry = WorkerRegistry(connection, TIMEOUT_S)
    skewed = report("w1")
    skewed.last_seen -= 3600  # a writer whose clock is an hour behind is still alive while it beats
    await registry.beat(skewed)
    await registry.beat(report("w2"))
    assert {w.worker_id: w.state for w in await registry.workers()} == {"w1": "ready", "w2": "ready"}
    await wait_lost(registry, "w2")
    lost = {w.worker_id: w for w in await registry.workers()}
    assert lost["w2"].state == "lost" and lost["w2"].current_job is None
    await registry.remove("w2")
    assert "w2" not in {w.worker_id for w in await registry.workers()}


async def test_an_unreadable_entry_is_skipped_not_fatal(connection: RedisConnection) -> None:
    registry = WorkerRegistry(connection, 5)
    await registry.beat(report("good"))
    await connection.client.hset(WORKERS_KEY, "from-another-version", b"\x81\xa5state\xa7unknown")
    assert [w.worker_id for w in await registry.workers()] == ["good"]


async def test_a_claim_is_refused_while_the_holder_lives_and_allowed_once_it_is_lost(
    connection: RedisConnection,
) -> None:
    registry, store = WorkerRegistry(connection, TIMEOUT_S), RedisJobStore(connection, 60)
    job = await new_job(store)
    await registry.beat(report("a"))
    await registry.beat(report("b"))
    assert await store.claim(job, "a", registry.is_alive) is not None
    assert await store.claim(job, "b", registry.is_alive) is None, "a redelivered message must not start it twice"
    assert await store.held_by("a") == [job]
    await wait_lost(registry, "a")
    claimed = await store.claim(job, "b", registry.is_alive)
    assert claimed is not None and claimed.worker == "b"
    assert (await store.held_by("a"), await store.held_by("b")) == ([], [job])


async def test_a_worker_taken_for_lost_can_no_longer_write_into_its_job(connection: RedisConnection) -> None:
    registry, store = WorkerRegistry(connection, 60), RedisJobStore(connection, 60)
    job = await new_job(store)
    await store.claim(job, "a", registry.is_alive)
    assert await store.append(job, JobStarted(pages_total=2), owner="a")
    assert await store.requeue(job, "b", "not b's job") is None, "only the holder's jobs are requeued"
    requeued = await store.requeue(job, "a", "a was lost")
    assert requeued is not None and requeued.state is JobState.QUEUED
    await store.claim(job, "b", registry.is_alive)

    assert not await store.append(job, TextDelta(page=0, text="stale"), owner="a")
    stale_page = PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop")
    assert not await store.append(job, stale_page, owner="a")
    assert await store.cancels_and_owners([job]) == [(False, "b")]
    assert await store.append(job, TextDelta(page=0, text="fresh"), owner="b")
    result = OcrResult(text="fresh", pages=[], usage=Usage(), finish_reason="stop")
    assert await store.append(job, JobCompleted(result=result), owner="b")
    entries = await connection.client.xrange(events_key(job))
    assert b"stale" not in b"".join(fields[b"e"] for _, fields in entries)
    record = await store.get(job)
    assert record is not None and record.state is JobState.COMPLETED and await store.held_by("b") == []


async def test_two_recoverers_requeue_a_lost_workers_job_once(redis_url: str, connection: RedisConnection) -> None:
    """Two workers (each its own connection) notice the loss at once."""
    registry, store = WorkerRegistry(connection, TIMEOUT_S), RedisJobStore(connection, 60)
    jobs = [await new_job(store), await new_job(store)]
    await registry.beat(report("lost"))
    for job in jobs:
        await store.claim(job, "lost", registry.is_alive)
    await wait_lost(registry, "lost")
    resent: list[str] = []

    async def resend(job_id: str, background: bool) -> None:
        resent.append(job_id)

    other = RedisConnection(redis_url)
    try:
        await asyncio.gather(
            requeue_lost_jobs(registry, store, resend),
            requeue_lost_jobs(WorkerRegistry(other, TIMEOUT_S), RedisJobStore(other, 60), resend),
        )
    finally:
        await other.close()
    assert sorted(resent) == sorted(jobs)
    records = [await store.get(job) for job in jobs]
    assert all(r is not None and r.state is JobState.QUEUED and r.worker is None for r in records)


async def test_a_worker_stopping_at_a_hard_limit_hands_its_other_jobs_over(connection: RedisConnection) -> None:
    registry, store = WorkerRegistry(connection, TIMEOUT_S), RedisJobStore(connection, 60)
    stuck, *others = [await new_job(store) for _ in range(3)]
    for job in (stuck, *others):
        await store.claim(job, "busy", registry.is_alive)
    resent: list[str] = []

    async def resend(job_id: str, background: bool) -> None:
        resent.append(job_id)

    requeued = await requeue_jobs_of(store, "busy", "hard limit", resend, keep=stuck)
    assert sorted(requeued) == sorted(resent) == sorted(others)
    kept = await store.get(stuck)
    assert await store.held_by("busy") == [stuck] and kept is not None and kept.worker == "busy"
    records = [await store.get(job) for job in others]
    assert all(r is not None and r.state is JobState.QUEUED for r in records)


async def test_the_heartbeat_outlives_errors_in_a_round(connection: RedisConnection) -> None:
    registry = WorkerRegistry(connection, 2)
    reporter = WorkerReporter("celery", "m")
    rounds: list[float] = []

    async def failing_recovery() -> None:
        rounds.append(time.monotonic())
        raise RuntimeError("the broker is away")  # what kombu raises is no RedisError

    heartbeat = Heartbeat(reporter, registry, interval=0.05, recover=failing_recovery)
    await heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while len(rounds) < 3:
            assert time.monotonic() < deadline, "the heartbeat stopped after an error"
            await asyncio.sleep(0.05)
        assert await registry.is_alive(reporter.worker_id)
    finally:
        await heartbeat.stop()
    assert reporter.worker_id not in {w.worker_id for w in await registry.workers()}


async def test_running_jobs_write_every_jobs_deltas_together_and_read_their_flags(connection: RedisConnection) -> None:
    """What a worker's job threads see between decode steps: their deltas written in one pipeline, in order before
    their next event; a cancel and a hand-over read for all jobs at once; a delta refused once the job moved on."""
    registry, store = WorkerRegistry(connection, 60), RedisJobStore(connection, 60)
    kept, cancelled, moved = [await new_job(store) for _ in range(3)]
    for job in (kept, cancelled, moved):
        await store.claim(job, "me", registry.is_alive)
    running = RunningJobs(store, "me", poll_s=60, flush_s=60)  # driven by hand here
    jobs = {job_id: running.start(job_id) for job_id in (kept, cancelled, moved)}
    for job in jobs.values():
        job.outbox.extend([TextDelta(page=0, text="a"), TextDelta(page=0, text="b")])
    await running.flush()
    assert [len(await connection.client.xrange(events_key(job))) for job in jobs] == [3, 3, 3]  # claimed + 2

    await store.request_cancel(cancelled)
    await store.requeue(moved, "me", "taken for lost")
    await store.claim(moved, "other", registry.is_alive)
    await running.poll()
    assert [(job.cancel, job.owner) for job in jobs.values()] == [(False, "me"), (True, "me"), (False, "other")]

    jobs[moved].owner = "me"  # as if read before the hand-over: its next delta tells
    jobs[moved].outbox.append(TextDelta(page=0, text="stale"))
    jobs[kept].outbox.append(TextDelta(page=0, text="c"))
    page = PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop")
    assert await running.write(jobs[kept], page)
    await running.flush()
    assert jobs[moved].owner is None, "a refused delta marks the job handed over"
    assert b"stale" not in b"".join(fields[b"e"] for _, fields in await connection.client.xrange(events_key(moved)))
    entries = await connection.client.xrange(events_key(kept))
    tags = [msgspec.msgpack.decode(fields[b"e"], type=AnyEvent) for _, fields in entries]
    assert [type(event).__name__ for event in tags][-2:] == ["TextDelta", "PageFinished"], "deltas before the page"
    running.finish(kept)
    assert (await store.cancels_and_owners([moved])) == [(False, "other")]

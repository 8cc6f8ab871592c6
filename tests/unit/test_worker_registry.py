"""The worker registry and job ownership in a private Redis: liveness by expiring keys, claims, fencing of a
worker taken for lost, recovery of its jobs, and a heartbeat thread that outlives its errors."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, Usage
from workers.events import JobCompleted, JobStarted, PageFinished, TextDelta
from workers.heartbeat import Heartbeat
from workers.jobs import JobRecord, JobState
from workers.recovery import requeue_jobs_of, requeue_lost_jobs
from workers.redis_store import JobStore, events_key
from workers.registry import WORKERS_KEY, WorkerInfo, WorkerRegistry
from workers.reporter import WorkerReporter

TIMEOUT_S = 0.3


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def report(worker_id: str) -> WorkerInfo:
    now = time.time()
    return WorkerInfo(
        worker_id=worker_id, host="h", pid=1, kind="celery", model="m", state="ready", started_at=now, last_seen=now
    )


def wait_lost(registry: WorkerRegistry, worker_id: str) -> None:
    deadline = time.monotonic() + 10
    while registry.is_alive(worker_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def new_job(store: JobStore) -> str:
    record = JobRecord.new(2)
    store.create(record, OcrRequest(prompt="Hi"))
    return record.id


def test_a_worker_is_lost_when_its_alive_key_expires_whatever_the_clocks_say(client: redis.Redis) -> None:
    registry = WorkerRegistry(client, TIMEOUT_S)
    skewed = report("w1")
    skewed.last_seen -= 3600  # a writer whose clock is an hour behind is still alive while it beats
    registry.beat(skewed)
    registry.beat(report("w2"))
    assert {w.worker_id: w.state for w in registry.workers()} == {"w1": "ready", "w2": "ready"}
    wait_lost(registry, "w2")
    lost = {w.worker_id: w for w in registry.workers()}
    assert lost["w2"].state == "lost" and lost["w2"].current_job is None
    registry.remove("w2")
    assert "w2" not in {w.worker_id for w in registry.workers()}


def test_an_unreadable_entry_is_skipped_not_fatal(client: redis.Redis) -> None:
    registry = WorkerRegistry(client, 5)
    registry.beat(report("good"))
    client.hset(WORKERS_KEY, "from-another-version", b"\x81\xa5state\xa7unknown")
    assert [w.worker_id for w in registry.workers()] == ["good"]


def test_a_claim_is_refused_while_the_holder_lives_and_allowed_once_it_is_lost(client: redis.Redis) -> None:
    registry, store = WorkerRegistry(client, TIMEOUT_S), JobStore(client, 60)
    job = new_job(store)
    registry.beat(report("a"))
    registry.beat(report("b"))
    assert store.claim(job, "a", registry.is_alive) is not None
    assert store.claim(job, "b", registry.is_alive) is None, "a redelivered message must not start it twice"
    assert store.held_by("a") == [job]
    wait_lost(registry, "a")
    assert store.claim(job, "b", registry.is_alive).worker == "b"
    assert (store.held_by("a"), store.held_by("b")) == ([], [job])


def test_a_worker_taken_for_lost_can_no_longer_write_into_its_job(client: redis.Redis) -> None:
    registry, store = WorkerRegistry(client, 60), JobStore(client, 60)
    job = new_job(store)
    store.claim(job, "a", registry.is_alive)
    assert store.append(job, JobStarted(pages_total=2), owner="a")
    assert store.requeue(job, "b", "not b's job") is None, "only the holder's jobs are requeued"
    assert store.requeue(job, "a", "a was lost").state is JobState.QUEUED
    store.claim(job, "b", registry.is_alive)

    assert not store.append(job, TextDelta(page=0, text="stale"), owner="a")
    assert not store.append(job, PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop"), owner="a")
    assert store.cancel_and_owner(job) == (False, "b")
    assert store.append(job, TextDelta(page=0, text="fresh"), owner="b")
    result = OcrResult(text="fresh", pages=[], usage=Usage(), finish_reason="stop")
    assert store.append(job, JobCompleted(result=result), owner="b")
    texts = [e for _, e in client.xrange(events_key(job))]
    assert b"stale" not in b"".join(f[b"e"] for f in texts)
    assert store.get(job).state is JobState.COMPLETED and store.held_by("b") == []


def test_two_recoverers_requeue_a_lost_workers_job_once(client: redis.Redis) -> None:
    registry, store = WorkerRegistry(client, TIMEOUT_S), JobStore(client, 60)
    jobs = [new_job(store), new_job(store)]
    registry.beat(report("lost"))
    for job in jobs:
        store.claim(job, "lost", registry.is_alive)
    wait_lost(registry, "lost")
    resent: list[str] = []
    barrier = threading.Barrier(2)

    def recover() -> None:
        barrier.wait()
        requeue_lost_jobs(registry, store, lambda job_id, background: resent.append(job_id))

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(resent) == sorted(jobs)
    assert all(store.get(job).state is JobState.QUEUED and store.get(job).worker is None for job in jobs)


def test_a_worker_stopping_at_a_hard_limit_hands_its_other_jobs_over(client: redis.Redis) -> None:
    registry, store = WorkerRegistry(client, TIMEOUT_S), JobStore(client, 60)
    stuck, *others = [new_job(store) for _ in range(3)]
    for job in (stuck, *others):
        store.claim(job, "busy", registry.is_alive)
    resent: list[str] = []
    requeued = requeue_jobs_of(store, "busy", "hard limit", lambda job_id, bg: resent.append(job_id), keep=stuck)
    assert sorted(requeued) == sorted(resent) == sorted(others)
    assert store.held_by("busy") == [stuck] and store.get(stuck).worker == "busy"
    assert all(store.get(job).state is JobState.QUEUED for job in others)


def test_the_heartbeat_thread_outlives_errors_in_a_round(client: redis.Redis) -> None:
    registry = WorkerRegistry(client, 2)
    reporter = WorkerReporter("celery", "m")
    rounds = []

    def failing_recovery() -> None:
        rounds.append(time.monotonic())
        raise RuntimeError("the broker is away")  # what kombu raises is no RedisError

    heartbeat = Heartbeat(reporter, registry, interval=0.05, recover=failing_recovery)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 10
        while len(rounds) < 3:
            assert time.monotonic() < deadline, "the heartbeat stopped after an error"
            time.sleep(0.05)
        assert registry.is_alive(reporter.worker_id)
    finally:
        heartbeat.stop()
    assert reporter.worker_id not in {w.worker_id for w in registry.workers()}


def test_a_second_run_of_a_job_on_one_worker_waits_for_the_first():
    from workers.reporter import WorkerReporter

    reporter = WorkerReporter("celery", "tiny")
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait()
        with reporter.running("job-1"):
            order.append("second starts")

    thread = threading.Thread(target=second)
    thread.start()
    with reporter.running("job-1"):
        first_in.set()
        thread.join(0.3)  # the second run must still be waiting
        order.append("first ends")
        assert list(reporter.jobs) == ["job-1"]
    thread.join(10)
    assert order == ["first ends", "second starts"] and reporter.jobs == {}

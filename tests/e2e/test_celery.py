"""Celery mode under stress: cancellation reaches a running job, a killed worker's job is redelivered and
completes, a job outlives an API restart, and an unreachable Redis is a clear 503. A private redis-server and
real worker and API processes."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import msgspec
import pytest
import redis

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.request import OcrRequest, SamplingParams
from tests.fixtures import (
    SERVED_NAME,
    data_url,
    free_port,
    pdf_bytes,
    running_server,
    running_worker,
    spawn,
    stop_process,
)
from workers.celery_dispatch import CeleryDispatcher
from workers.engine_options import EngineOptions
from workers.events import (
    AnyEvent,
    JobCancelled,
    JobClaimed,
    JobCompleted,
    JobError,
    JobEvent,
    JobFailed,
    JobRequeued,
    JobStarted,
    PageFinished,
    TextDelta,
)
from workers.job_execution import WorkerIo, execute
from workers.jobs import JobRecord, JobState
from workers.loop_thread import LoopThread
from workers.model_host import ModelHost
from workers.redis_client import RedisConnection
from workers.redis_keys import WORKERS_KEY, events_key
from workers.redis_store import RedisJobStore
from workers.registry import WorkerInfo, WorkerRegistry
from workers.reporter import WorkerReporter
from workers.running_jobs import RunningJobs

T = TypeVar("T")
REDELIVERY_S = 4
# Fast heartbeats: a killed worker is seen as lost within 3 s.
HEARTBEAT_ENV = {"OCRSERVE_HEARTBEAT_INTERVAL": "0.5", "OCRSERVE_WORKER_TIMEOUT": "3"}
WORKER_ENV = {"OCRSERVE_REDELIVERY_TIMEOUT": str(REDELIVERY_S), **HEARTBEAT_ENV}
# Celery's own redelivery far away: a job that completes was handed over by the registry's recovery.
RECOVERY_ONLY_ENV = {"OCRSERVE_REDELIVERY_TIMEOUT": "3600", **HEARTBEAT_ENV}


def pdf_job(pages: int, max_tokens: int) -> OcrRequest:
    document = load_document(pdf_bytes(pages), limits=DocumentLimits())
    return OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=max_tokens))


def wait_until(check: Callable[[], T | None], what: str, deadline_s: float = 180.0) -> T:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if record := check():
            return record
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Api:
    """The API side of Celery mode in this process: the same dispatcher `ocrserve serve` uses."""

    def __init__(self, redis_url: str, shard_pages: int = 0) -> None:
        self.redis_url = redis_url
        self.loop = asyncio.new_event_loop()
        self.connection = RedisConnection(redis_url)
        self.dispatcher = CeleryDispatcher(
            self.connection,
            retention=600,
            redelivery_timeout=REDELIVERY_S,
            worker_timeout=3,
            switch_timeout=30,
            shard_pages=shard_pages,
        )
        self.loop.run_until_complete(self.dispatcher.start())

    def submit(self, request: OcrRequest) -> JobRecord:
        record = JobRecord.of(request, background=True)
        return self.loop.run_until_complete(self.dispatcher.submit(record, request))

    def get(self, job_id: str) -> JobRecord | None:
        return self.loop.run_until_complete(self.dispatcher.get(job_id))

    def events(self, job_id: str) -> list[JobEvent]:
        async def read() -> list[JobEvent]:
            return [event async for event in self.dispatcher.events(job_id)]

        return self.loop.run_until_complete(read())

    def wait_for_text(self, job_id: str) -> None:
        """Until the job has streamed its first text (a worker is decoding it)."""

        async def first_text() -> None:
            async for event in self.dispatcher.events(job_id):
                if isinstance(event, TextDelta) and event.text:
                    return
            raise AssertionError("the job ended without text")

        self.loop.run_until_complete(asyncio.wait_for(first_text(), 180))

    def forget_workers(self) -> None:
        with redis.Redis.from_url(self.redis_url) as client:
            client.delete(WORKERS_KEY)

    def workers(self) -> list[WorkerInfo]:
        return self.loop.run_until_complete(self.dispatcher.workers())

    def wait_for_workers(self, states: list[str]) -> list[WorkerInfo]:
        """The registry once its workers' states are `states` (sorted)."""
        deadline = time.monotonic() + 180
        while True:
            workers = self.workers()
            if sorted(w.state for w in workers) == states:
                return workers
            assert time.monotonic() < deadline, f"registry never showed {states}: {workers}"
            time.sleep(0.2)

    def in_state(self, job_id: str, *states: JobState, pages_done: int = 0) -> Callable[[], JobRecord | None]:
        def check() -> JobRecord | None:
            record = self.get(job_id)
            return record if record and record.state in states and record.pages_done >= pages_done else None

        return check

    def close(self) -> None:
        self.loop.run_until_complete(self.dispatcher.close())
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


@pytest.fixture
def api(redis_url: str) -> Iterator[Api]:
    api = Api(redis_url)
    yield api
    api.close()


def test_cancel_reaches_a_running_job_and_the_worker_takes_the_next(
    api: Api, redis_url: str, tiny_checkpoint: Path, server_logs: Path
) -> None:
    with running_worker(tiny_checkpoint, server_logs, "celery-cancel", redis_url, WORKER_ENV) as worker:
        long_job = api.submit(pdf_job(pages=6, max_tokens=3000))
        wait_until(api.in_state(long_job.id, JobState.RUNNING), "the long job to start")
        cancelled = api.loop.run_until_complete(api.dispatcher.cancel(long_job.id))
        assert cancelled is not None
        record = wait_until(api.in_state(long_job.id, JobState.CANCELLED), "the cancellation")
        assert record.pages_done < 6
        short_job = api.submit(pdf_job(pages=1, max_tokens=2))
        done = wait_until(api.in_state(short_job.id, JobState.COMPLETED), "the next job")
        assert done.result is not None and len(done.result.pages) == 1
        assert worker.poll() is None, "the same worker process served both jobs"


def test_a_job_whose_worker_is_killed_completes_on_another_worker(
    api: Api, redis_url: str, tiny_checkpoint: Path, server_logs: Path
) -> None:
    with running_worker(tiny_checkpoint, server_logs, "celery-victim", redis_url, WORKER_ENV) as victim:
        job = api.submit(pdf_job(pages=3, max_tokens=400))
        wait_until(api.in_state(job.id, JobState.RUNNING), "the job to start")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    assert api.get(job.id).state is JobState.RUNNING
    with running_worker(tiny_checkpoint, server_logs, "celery-rescuer", redis_url, WORKER_ENV):
        record = wait_until(api.in_state(job.id, JobState.COMPLETED), "the redelivered job to complete")
    assert record.result is not None and [page.index for page in record.result.pages] == [0, 1, 2]
    assert record.pages_done == 3


def raw_events(redis_url: str, job_id: str) -> list[JobEvent]:
    """The job's stream as the workers wrote it (no reader's replay filter)."""
    with redis.Redis.from_url(redis_url) as client:
        entries = client.xrange(events_key(job_id))
    return [msgspec.msgpack.decode(fields[b"e"], type=AnyEvent) for _, fields in entries]


def read_live(redis_url: str, job_id: str, into: list[JobEvent]) -> threading.Thread:
    """A reader following the job's stream from another thread (its own dispatcher), as a client would."""

    def follow() -> None:
        reader = Api(redis_url)
        try:
            into.extend(reader.events(job_id))
        finally:
            reader.close()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_killed_workers_finished_pages_are_not_read_again(
    api: Api, redis_url: str, tiny_checkpoint: Path, server_logs: Path, temperature: float
) -> None:
    """One page at a time on the victim, killed once two pages are done: the rescuer reads only the rest (each
    page ends in exactly one PageFinished) and the third, cut in two, again; a stream followed across the
    hand-over holds exactly the result's text, sampled text too (the job got a seed when queued), and greedy
    text is an undisturbed run's."""
    document = load_document(pdf_bytes(6), limits=DocumentLimits())
    sampling = SamplingParams(max_tokens=200, temperature=temperature)
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=sampling)
    one_at_a_time = {**WORKER_ENV, "OCRSERVE_MAX_NUM_SEQS": "1"}
    live: list[JobEvent] = []
    with running_worker(tiny_checkpoint, server_logs, "celery-resume-victim", redis_url, one_at_a_time) as victim:
        job = api.submit(request)
        reader = read_live(redis_url, job.id, live)
        wait_until(api.in_state(job.id, JobState.RUNNING, pages_done=2), "two pages to be done")

        def third_page_begun() -> bool:  # its text has begun to stream: the hand-over cuts a page in two
            sent = sum(len(e.text) for e in raw_events(redis_url, job.id) if isinstance(e, TextDelta) and e.page == 2)
            return sent > len(request.page_separator)

        wait_until(third_page_begun, "the third page's text to begin")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    before = api.get(job.id)
    assert before is not None and 2 <= before.pages_done < 6
    with running_worker(tiny_checkpoint, server_logs, "celery-resume-rescuer", redis_url, WORKER_ENV):
        resumed = wait_until(api.in_state(job.id, JobState.COMPLETED), "the handed-over job to complete")
        again = api.submit(request)
        undisturbed = wait_until(api.in_state(again.id, JobState.COMPLETED), "an undisturbed run")
    reader.join(60)
    events = raw_events(redis_url, job.id)
    assert any(isinstance(event, JobRequeued) for event in events)
    runs = Counter(event.page for event in events if isinstance(event, PageFinished))
    assert runs == dict.fromkeys(range(6), 1)  # no page finished twice: the victim's pages were not read again
    assert resumed.result is not None and undisturbed.result is not None
    assert "".join(e.text for e in live if isinstance(e, TextDelta)) == resumed.result.text
    assert isinstance(live[-1], JobCompleted)
    if temperature == 0.0:
        assert resumed.result.text == undisturbed.result.text
    assert resumed.pages_done == 6


def test_two_workers_share_a_sharded_job_and_it_reads_as_one_run(
    redis_url: str, tiny_checkpoint: Path, server_logs: Path
) -> None:
    """A 40-page job in shards of 8 over two one-job-at-a-time workers: both take shards, and the text, the
    stream and the pages are a one-shard run's, in order."""
    request = pdf_job(pages=40, max_tokens=6)
    one_job = {**WORKER_ENV, "OCRSERVE_WORKER_CONCURRENCY": "1"}
    sharded, whole = Api(redis_url, shard_pages=8), Api(redis_url)
    try:
        with (
            running_worker(tiny_checkpoint, server_logs, "celery-shards-a", redis_url, one_job),
            running_worker(tiny_checkpoint, server_logs, "celery-shards-b", redis_url, one_job),
        ):
            sharded.wait_for_workers(["ready", "ready"])
            job = sharded.submit(request)
            done = wait_until(sharded.in_state(job.id, JobState.COMPLETED), "the sharded job")
            single = whole.submit(request)
            reference = wait_until(whole.in_state(single.id, JobState.COMPLETED), "the one-shard run")
        assert done.sharding is not None and len(done.sharding.shards) == 5
        claims = {
            event.worker
            for shard in done.sharding.shards
            for event in raw_events(redis_url, shard.job_id)
            if isinstance(event, JobClaimed)
        }
        assert len(claims) == 2  # both workers ran some of its pages
        assert done.result is not None and reference.result is not None
        assert [page.index for page in done.result.pages] == list(range(40)) and done.pages_done == 40
        assert [page.text for page in done.result.pages] == [page.text for page in reference.result.pages]
        assert done.result.text == reference.result.text
        streamed = [event for event in sharded.events(job.id)]
        assert "".join(e.text for e in streamed if isinstance(e, TextDelta)) == done.result.text
        assert [e.pages_done for e in streamed if isinstance(e, PageFinished)] == list(range(1, 41))
    finally:
        sharded.close()
        whole.close()


def test_a_failed_shard_fails_the_job_and_stops_the_others(redis_url: str) -> None:
    """No worker needed: the shards wait in the queue; one is marked failed, and the next read of the job says
    failed and cancels the rest."""
    sharded = Api(redis_url, shard_pages=2)
    try:
        job = sharded.submit(pdf_job(pages=6, max_tokens=4))
        assert job.sharding is not None and sharded.get(job.id).state is JobState.QUEUED
        first, *others = (shard.job_id for shard in job.sharding.shards)
        error = JobError(code="unsupported_document", message="page 2 could not be read", kind="invalid_request")
        sharded.loop.run_until_complete(RedisJobStore(sharded.connection, 600).append(first, JobFailed(error=error)))
        failed = sharded.get(job.id)
        assert failed.state is JobState.FAILED and failed.error == error
        assert [sharded.get(other).state for other in others] == [JobState.CANCELLED] * 2
        assert isinstance(sharded.events(job.id)[-1], JobFailed)
    finally:
        sharded.close()


def test_cancelling_a_sharded_job_stops_every_shard(redis_url: str, tiny_checkpoint: Path, server_logs: Path) -> None:
    sharded = Api(redis_url, shard_pages=2)
    try:
        with running_worker(tiny_checkpoint, server_logs, "celery-shards-cancel", redis_url, WORKER_ENV):
            job = sharded.submit(pdf_job(pages=8, max_tokens=3000))
            wait_until(sharded.in_state(job.id, JobState.RUNNING), "the sharded job to start")
            sharded.loop.run_until_complete(sharded.dispatcher.cancel(job.id))
            record = wait_until(sharded.in_state(job.id, JobState.CANCELLED), "the cancellation")
            assert record.sharding is not None
            children = [
                wait_until(sharded.in_state(shard.job_id, JobState.CANCELLED), "a shard to stop")
                for shard in record.sharding.shards
            ]
        assert len(children) == 4 and sum(child.pages_done for child in children) < 8
    finally:
        sharded.close()


def test_the_registry_lists_live_workers_and_hands_a_lost_workers_job_to_another(
    api: Api, redis_url: str, tiny_checkpoint: Path, server_logs: Path
) -> None:
    api.forget_workers()  # the lost workers of earlier tests in this module
    with (
        running_worker(tiny_checkpoint, server_logs, "registry-a", redis_url, RECOVERY_ONLY_ENV) as first,
        running_worker(tiny_checkpoint, server_logs, "registry-b", redis_url, RECOVERY_ONLY_ENV) as second,
    ):
        workers = api.wait_for_workers(["ready", "ready"])
        assert sorted(w.pid for w in workers) == sorted([first.pid, second.pid])
        for worker in workers:
            assert worker.kind == "celery" and worker.model == str(tiny_checkpoint) and worker.family
            assert worker.device is not None and worker.device.device == "cpu" and worker.dtype == "float32"
            assert worker.device.memory_total_gb and worker.device.memory_free_gb
            assert worker.available_devices[0].device == "cpu"
            assert worker.started_at <= worker.last_seen

        job = api.submit(pdf_job(pages=3, max_tokens=1500))
        api.wait_for_text(job.id)
        running = wait_until(api.in_state(job.id, JobState.RUNNING), "the job to start")
        owner = next(w for w in api.workers() if w.worker_id == running.worker)
        victim, rescuer = (first, second) if owner.pid == first.pid else (second, first)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)

        states = {w.pid: w.state for w in api.wait_for_workers(["lost", "ready"])}
        assert states == {victim.pid: "lost", rescuer.pid: "ready"}
        record = wait_until(api.in_state(job.id, JobState.COMPLETED), "the requeued job to complete")
        assert record.worker != owner.worker_id
        assert record.result is not None and [page.index for page in record.result.pages] == [0, 1, 2]
        events = api.events(job.id)
        assert any(isinstance(event, JobRequeued) for event in events), "the job was handed over, not redelivered"
        assert sum(isinstance(event, JobStarted) for event in events) == 1
        streamed = "".join(event.text for event in events if isinstance(event, TextDelta))
        assert streamed == record.result.text, "a stream shows the text once, not the lost run's again"

        def survivor_report() -> WorkerInfo | None:  # its next heartbeat counts the pages
            survivor = next(w for w in api.workers() if w.pid == rescuer.pid)
            return survivor if survivor.pages_done >= 3 and survivor.current_job is None else None

        assert wait_until(survivor_report, "the rescuer's report").pages_per_second > 0
    # a worker that stops cleanly leaves the registry; the lost one stays listed as lost
    assert [w.state for w in api.workers()] == ["lost"]


def test_an_unreachable_redis_is_a_clear_503(tiny_checkpoint: Path, server_logs: Path) -> None:
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    process = spawn("serve", tiny_checkpoint, port, server_logs / "no-redis.log", {"OCRSERVE_REDIS_URL": dead_redis})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def unhealthy() -> httpx.Response | None:
                try:
                    reply = client.get("/health")
                except httpx.TransportError:
                    return None
                return reply if reply.status_code == 503 and "Redis" in reply.json()["message"] else None

            deadline = time.monotonic() + 60
            while unhealthy() is None:
                assert time.monotonic() < deadline, "the API never reported Redis as unreachable"
                time.sleep(0.25)
            chat = client.post(
                "/v1/chat/completions", json={"model": "tiny-ocr2", "messages": [{"role": "user", "content": "Hi"}]}
            )
        assert chat.status_code == 503
        error = chat.json()["error"]
        assert "cannot reach Redis" in error["message"] and "OCRSERVE_REDIS_URL" in error["message"]
        assert chat.headers["content-type"].startswith("application/json")
    finally:
        stop_process(process)


def test_a_job_survives_an_api_restart(
    redis_url: str, tiny_checkpoint: Path, server_logs: Path, tmp_path: Path
) -> None:
    env = {"OCRSERVE_REDIS_URL": redis_url}
    document = data_url(pdf_bytes(3), "application/pdf")
    body = {
        "model": SERVED_NAME,
        "input": [{"role": "user", "content": [{"type": "input_file", "filename": "a.pdf", "file_data": document}]}],
        "max_output_tokens": 200,
        "background": True,
    }
    with running_worker(tiny_checkpoint, server_logs, "celery-restart-worker", redis_url, WORKER_ENV):
        with running_server(tiny_checkpoint, server_logs, "celery-api-1", env) as first, first.client() as http:
            response_id = http.post("/v1/responses", json=body).json()["id"]
            deadline = time.monotonic() + 120
            while http.get(f"/v1/responses/{response_id}").json()["status"] == "queued":
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.2)
        with running_server(tiny_checkpoint, server_logs, "celery-api-2", env) as second, second.client() as http:
            deadline = time.monotonic() + 180
            while (reply := http.get(f"/v1/responses/{response_id}").json())["status"] in ("queued", "in_progress"):
                assert time.monotonic() < deadline, "the job never finished"
                time.sleep(0.5)
    assert reply["status"] in ("completed", "incomplete")
    assert reply["output"][0]["content"][0]["text"].count("<--- Page Split --->") == 2
    assert reply["ocr_progress"]["pages_done"] == 3


def test_the_worker_time_limit_fails_a_job_and_finished_jobs_are_skipped(redis_url: str, tiny_checkpoint: Path) -> None:
    loop = LoopThread()
    connection = RedisConnection(redis_url)
    store = RedisJobStore(connection, ttl=60)
    ocr = ModelHost(EngineOptions(model=str(tiny_checkpoint), device="cpu"))
    request = pdf_job(pages=1, max_tokens=50)

    async def resend(job_id: str, background: bool) -> None:
        pass

    reporter = WorkerReporter("celery", str(tiny_checkpoint))
    io = WorkerIo(
        loop=loop,
        store=store,
        registry=WorkerRegistry(connection, 30),
        reporter=reporter,
        resend=resend,
        running=RunningJobs(store, reporter.worker_id, poll_s=0.1, flush_s=0.05),
    )
    loop.spawn(io.running.run())
    try:
        slow = JobRecord(pages_total=1)
        loop.call(store.create(slow, request))
        execute(slow.id, io, ocr, time_limit=0)
        failed = loop.call(store.get(slow.id))
        assert failed is not None and failed.state is JobState.FAILED
        assert failed.error is not None and failed.error.code == "time_limit_exceeded"
        assert "OCRSERVE_JOB_TIME_LIMIT" in failed.error.message

        cancelled = JobRecord(pages_total=1)
        loop.call(store.create(cancelled, request))
        loop.call(store.append(cancelled.id, JobCancelled()))
        execute(cancelled.id, io, ocr, time_limit=60)
        record = loop.call(store.get(cancelled.id))
        assert record is not None and record.state is JobState.CANCELLED
    finally:
        loop.call(connection.close())
        loop.stop()
        ocr.engine.close()

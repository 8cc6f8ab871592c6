"""Submitting in Celery mode against a private redis-server, no worker: a job whose message cannot be sent, and a
request cancelled while its job is being queued (the job and its admission slot must stay together)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.admission.guard import AdmissionTicket, job_slot
from app.admission.store import MemoryAdmissionStore
from app.context import AppContext
from ocr_engine.errors import ServiceUnavailable
from ocr_engine.request import OcrRequest, SamplingParams
from ocrserve.settings import Settings
from tests.fixtures import free_port
from workers.celery_app import make_celery
from workers.celery_dispatch import CeleryDispatcher
from workers.jobs import JobRecord, JobState
from workers.redis_client import RedisConnection

REQUEST = OcrRequest(prompt="Hi", sampling=SamplingParams(max_tokens=1))


@asynccontextmanager
async def celery_dispatcher(redis_url: str) -> AsyncIterator[CeleryDispatcher]:
    connection = RedisConnection(redis_url)
    dispatcher = CeleryDispatcher(
        connection, retention=600, redelivery_timeout=60, worker_timeout=30, switch_timeout=30
    )
    try:
        yield dispatcher
    finally:
        await dispatcher.close()
        await connection.close()


def test_a_job_whose_message_cannot_be_sent_fails_and_leaves_its_queue(redis_url: str) -> None:
    async def scenario() -> None:
        async with celery_dispatcher(redis_url) as dispatcher:
            # the record goes to the live Redis; the message to a broker nobody listens on
            dispatcher._queue.app = make_celery(f"redis://127.0.0.1:{free_port()}/0", redelivery_timeout=60)
            with pytest.raises(ServiceUnavailable) as refused:
                await dispatcher.submit(JobRecord.of(REQUEST, background=True, job_id="unsent"), REQUEST)
            assert "OCRSERVE_REDIS_URL" in refused.value.message
            record = await dispatcher.get("unsent")
            assert record is not None and record.state is JobState.FAILED
            assert record.error is not None and "could not be queued" in record.error.message
            assert await dispatcher.queued_pages(True) == 0

    asyncio.run(scenario())


def test_a_request_cancelled_while_its_job_is_queued_keeps_job_and_slot_together(redis_url: str) -> None:
    """The thread that queues the job cannot be stopped: the job gets queued all the same, so it must keep the
    slot reserved for it (released, the client would have one job more in flight than its limit)."""
    entered, gate = threading.Event(), threading.Event()

    async def scenario() -> None:
        async with celery_dispatcher(redis_url) as dispatcher:
            send = dispatcher._queue.app.send_task

            def held_send(*args: Any, **kwargs: Any) -> Any:
                entered.set()
                gate.wait(30)
                return send(*args, **kwargs)

            dispatcher._queue.app.send_task = held_send
            store = MemoryAdmissionStore()
            context = SimpleNamespace(settings=Settings(max_concurrent_jobs=1), admission=store, dispatcher=dispatcher)
            ctx = cast(AppContext, context)

            async def submit_in_a_slot() -> None:
                async with job_slot(ctx, AdmissionTicket("client")) as job_id:
                    await dispatcher.submit(JobRecord.of(REQUEST, background=True, job_id=job_id), REQUEST)

            request = asyncio.create_task(submit_in_a_slot())
            try:
                await asyncio.to_thread(entered.wait, 30)
                request.cancel()
                for _ in range(20):  # turns of the loop for the cancellation to land wherever it lands
                    await asyncio.sleep(0)
            finally:
                gate.set()
            with pytest.raises(asyncio.CancelledError):
                await request
            held = await store.reservations("client")
            assert len(held) == 1, "the queued job lost its slot"
            record = await dispatcher.get(next(iter(held)))
            assert record is not None and record.state is JobState.QUEUED

    try:
        asyncio.run(scenario())
    finally:
        gate.set()


def test_a_sampled_job_without_a_seed_gets_one_of_its_own() -> None:
    """So a page read again after a hand-over draws what the lost run drew; greedy and seeded jobs are kept."""
    from workers.celery_dispatch import _with_a_seed

    sampled = OcrRequest(prompt="Hi", sampling=SamplingParams(temperature=0.8))
    seeds = {_with_a_seed(sampled).sampling.seed for _ in range(3)}
    assert None not in seeds and len(seeds) == 3  # a fresh seed per job: runs of different jobs still differ
    assert _with_a_seed(REQUEST) is REQUEST
    seeded = OcrRequest(prompt="Hi", sampling=SamplingParams(temperature=0.8, seed=7))
    assert _with_a_seed(seeded) is seeded

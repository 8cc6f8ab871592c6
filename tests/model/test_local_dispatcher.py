"""The embedded dispatcher with the real engine: events, cancellation, and a model that fails to load."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ocr_engine.errors import ModelUnavailable
from ocr_engine.request import OcrRequest, SamplingParams
from workers.dispatch import Readiness
from workers.engine_options import EngineOptions
from workers.events import JobCancelled, JobCompleted, JobFailed, JobStarted, TextDelta
from workers.jobs import JobRecord, JobState
from workers.local import LocalDispatcher
from workers.model_host import ModelHost


async def wait_ready(dispatcher: LocalDispatcher) -> None:
    for _ in range(600):
        if dispatcher.status().readiness is not Readiness.LOADING:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the model did not finish loading")


def short(max_tokens: int = 4) -> OcrRequest:
    return OcrRequest(prompt="Hello", sampling=SamplingParams(max_tokens=max_tokens))


async def submit(dispatcher: LocalDispatcher, request: OcrRequest) -> JobRecord:
    return await dispatcher.submit(JobRecord.of(request), request)


@pytest.fixture(scope="module")
def load(tiny_checkpoint):
    ocr = ModelHost(EngineOptions(model=str(tiny_checkpoint), device="cpu"))
    return lambda: ocr


def test_job_events_and_cancellation(load):
    async def scenario() -> None:
        dispatcher = LocalDispatcher(load, model="tiny")
        await dispatcher.start()
        await wait_ready(dispatcher)
        done = await submit(dispatcher, short())
        events = [event async for event in dispatcher.events(done.id)]
        assert isinstance(events[0], JobStarted) and isinstance(events[-1], JobCompleted)
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == events[-1].result.text
        assert (await dispatcher.get(done.id)).state is JobState.COMPLETED

        long_job = await submit(dispatcher, short(max_tokens=3000))
        queued = await submit(dispatcher, short(max_tokens=3000))  # queued or started: the cancel reaches it
        assert await dispatcher.cancel(queued.id) is not None
        async for event in dispatcher.events(long_job.id):
            if isinstance(event, TextDelta):
                await dispatcher.cancel(long_job.id)
        assert (await dispatcher.get(long_job.id)).state is JobState.CANCELLED
        assert isinstance([e async for e in dispatcher.events(queued.id)][-1], JobCancelled)
        assert (await dispatcher.get(queued.id)).state is JobState.CANCELLED
        assert await dispatcher.cancel("nope") is None
        await dispatcher.close()

    asyncio.run(scenario())


def test_a_model_that_fails_to_load_fails_its_queued_jobs():
    def broken():
        raise ModelUnavailable("no weights here")

    async def scenario() -> None:
        dispatcher = LocalDispatcher(broken, model="missing")
        job = await submit(dispatcher, short())
        await dispatcher.start()
        await wait_ready(dispatcher)
        assert dispatcher.status().readiness is Readiness.FAILED
        assert dispatcher.status().message == "no weights here"
        events = [event async for event in dispatcher.events(job.id)]
        assert isinstance(events[-1], JobFailed) and events[-1].error.code == "model_unavailable"
        await dispatcher.close()

    asyncio.run(scenario())


def test_a_model_step_that_never_returns_makes_the_engine_failed(tiny_checkpoint, monkeypatch):
    """A decode step that hangs (a wedged accelerator call): past the stall limit the status is `failed` (so
    /health answers 503 and admission refuses jobs), and it is `ready` again once the step returns."""
    host = ModelHost(EngineOptions(model=str(tiny_checkpoint), device="cpu"))
    release = threading.Event()
    entered = threading.Event()
    decode = host.engine.scheduler.decoder.decode

    def hanging_decode(*args, **kwargs):
        entered.set()
        release.wait()
        return decode(*args, **kwargs)

    monkeypatch.setattr(host.engine.scheduler.decoder, "decode", hanging_decode)

    async def scenario() -> None:
        dispatcher = LocalDispatcher(lambda: host, model="tiny", stall_limit=0.2)
        await dispatcher.start()
        await wait_ready(dispatcher)
        assert dispatcher.status().readiness is Readiness.READY
        job = await submit(dispatcher, short())
        assert await asyncio.to_thread(entered.wait, 60)
        while host.engine.scheduler.stalled_for() <= 0.2:
            await asyncio.sleep(0.05)
        status = dispatcher.status()
        assert status.readiness is Readiness.FAILED and "stuck" in status.message
        release.set()
        events = [event async for event in dispatcher.events(job.id)]
        assert isinstance(events[-1], JobCompleted)
        assert dispatcher.status().readiness is Readiness.READY
        await dispatcher.close()

    asyncio.run(scenario())

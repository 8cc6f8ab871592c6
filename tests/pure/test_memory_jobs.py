"""The embedded server's jobs: the memory store (events followed across threads, the terminal guard, documents let
go at the end) and the dispatcher's queued pages while the model loads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ocr_engine.errors import ModelUnavailable
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.results import OcrResult, Usage
from workers.events import JobCancelled, JobCompleted, JobStarted, TextDelta
from workers.jobs import JobRecord, JobState
from workers.local import LocalDispatcher
from workers.memory_store import MemoryJobStore

pytestmark = pytest.mark.anyio
REQUEST = OcrRequest(prompt="Hi", sampling=SamplingParams(max_tokens=1))
RESULT = OcrResult(text="Hello", pages=[], usage=Usage(), finish_reason="stop")


async def test_a_reader_on_the_loop_follows_events_added_by_a_job_thread() -> None:
    store = MemoryJobStore()
    record = JobRecord(pages_total=1)
    await store.create(record, REQUEST)

    def job_thread() -> None:
        for event in (JobStarted(pages_total=1), TextDelta(page=0, text="Hello"), JobCompleted(result=RESULT)):
            assert store.add(record.id, event)

    reader = asyncio.create_task(_read(store, record.id))
    await asyncio.sleep(0.01)  # the reader waits before anything is there
    thread = threading.Thread(target=job_thread)
    thread.start()
    events = await asyncio.wait_for(reader, 10)
    thread.join()
    assert [type(event) for event in events] == [JobStarted, TextDelta, JobCompleted]
    assert await store.request(record.id) is None, "a finished job lets its documents go"


async def test_an_event_after_the_end_is_refused_and_not_kept() -> None:
    store = MemoryJobStore()
    record = JobRecord(pages_total=1)
    await store.create(record, REQUEST)
    assert await store.append(record.id, JobCancelled())
    assert not await store.append(record.id, JobCompleted(result=RESULT)), "a late completion loses to the cancel"
    assert [type(event) for event in await _read(store, record.id)] == [JobCancelled]
    kept = await store.get(record.id)
    assert kept is not None and kept.state is JobState.CANCELLED


async def test_a_reader_stops_when_the_job_is_deleted() -> None:
    store = MemoryJobStore()
    record = JobRecord(pages_total=1)
    await store.create(record, REQUEST)
    store.add(record.id, JobStarted(pages_total=1))
    reader = asyncio.create_task(_read(store, record.id))
    await asyncio.sleep(0.01)  # the reader waits for more
    await store.delete(record.id)
    assert [type(event) for event in await asyncio.wait_for(reader, 10)] == [JobStarted]
    assert not store.add(record.id, JobCancelled()), "nothing more is kept of a deleted job"


async def test_a_job_that_keeps_its_documents_keeps_its_request_after_the_end() -> None:
    store = MemoryJobStore()
    record = JobRecord(pages_total=1)
    record.keeps_documents = True
    await store.create(record, REQUEST)
    await store.append(record.id, JobCompleted(result=RESULT))
    assert await store.request(record.id) == REQUEST


async def test_the_embedded_dispatcher_counts_the_pages_of_queued_jobs() -> None:
    gate = threading.Event()

    def load_never() -> None:  # the model "loads" until the test ends, so every job stays queued
        gate.wait(60)
        raise ModelUnavailable("the test is over")

    dispatcher = LocalDispatcher(load_never, model="tiny")  # type: ignore[arg-type]
    await dispatcher.start()
    try:
        first = await dispatcher.submit(JobRecord.of(REQUEST, background=True, job_id="chosen-id"), REQUEST)
        assert first.id == "chosen-id"
        await dispatcher.submit(JobRecord.of(REQUEST, background=True), REQUEST)
        await dispatcher.submit(JobRecord.of(REQUEST), REQUEST)
        assert (await dispatcher.queued_pages(True), await dispatcher.queued_pages(False)) == (2, 1)
        await dispatcher.cancel(first.id)
        assert await dispatcher.queued_pages(True) == 1
    finally:
        gate.set()
        await dispatcher.close()
    failed = await dispatcher.get("chosen-id")
    assert failed is not None and failed.state is JobState.CANCELLED, "cancelled stays cancelled"


async def _read(store: MemoryJobStore, job_id: str) -> list[object]:
    return [event async for event in store.events(job_id)]

"""Sharded jobs, the pure parts: page ranges across documents, the parent's record and events made from its
children's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ocr_engine.request import Document, OcrRequest
from ocr_engine.results import OcrResult, PageResult, Usage
from workers.events import JobCancelled, JobCompleted, JobEvent, JobStarted, PageFinished, TextDelta
from workers.jobs import JobRecord, JobState, Shard, Sharding
from workers.shards import merge_events, merge_records, split_request

SEPARATOR = "\n--\n"


def request(*page_counts: int, output_format: str = "markdown") -> OcrRequest:
    documents = tuple(Document(data=b"", kind="pdf", page_count=count) for count in page_counts)
    return OcrRequest(prompt="p", documents=documents, page_separator=SEPARATOR, output_format=output_format)


def test_shards_are_consecutive_page_ranges_across_documents() -> None:
    shards = split_request(request(3, 4), 3)
    assert [first for first, _ in shards] == [0, 3, 6]
    assert [[doc.selected_pages for doc in part.documents] for _, part in shards] == [[(0, 1, 2)], [(0, 1, 2)], [(3,)]]
    shards = split_request(request(2, 3), 4)
    assert [[doc.selected_pages for doc in part.documents] for _, part in shards] == [[(0, 1), (0, 1)], [(2,)]]
    assert all(part.page_separator == SEPARATOR for _, part in shards)
    assert [part.first_page for _, part in shards] == [0, 4]  # seeds per page as unsharded


def test_a_small_job_or_no_shard_size_is_not_split() -> None:
    whole = request(4)
    assert split_request(whole, 4) == [(0, whole)] and split_request(whole, 0) == [(0, whole)]


def page(index: int, text: str) -> PageResult:
    return PageResult(index=index, text=text, raw_text=text, finish_reason="stop", usage=Usage(completion_tokens=2))


def result(*texts: str) -> OcrResult:
    pages = [page(index, text) for index, text in enumerate(texts)]
    return OcrResult(
        text=SEPARATOR.join(texts), pages=pages, usage=Usage(completion_tokens=2 * len(texts)), finish_reason="stop"
    )


PARENT = JobRecord(
    id="parent",
    pages_total=4,
    sharding=Sharding(shards=(Shard(job_id="a", first_page=0), Shard(job_id="b", first_page=2)), separator=SEPARATOR),
)


def child(job_id: str, state: JobState, pages_done: int = 0, done: OcrResult | None = None) -> JobRecord:
    return JobRecord(id=job_id, state=state, pages_total=2, pages_done=pages_done, result=done, finished_at=1.0)


def test_the_parent_record_follows_its_children() -> None:
    waiting = [child("a", JobState.QUEUED), child("b", JobState.QUEUED)]
    assert merge_records(PARENT, waiting).state is JobState.QUEUED
    running = merge_records(
        PARENT, [child("a", JobState.COMPLETED, 2, result("x", "y")), child("b", JobState.RUNNING, 1)]
    )
    assert (running.state, running.pages_done, running.finished_at) == (JobState.RUNNING, 3, None)
    done = merge_records(
        PARENT,
        [child("a", JobState.COMPLETED, 2, result("x", "y")), child("b", JobState.COMPLETED, 2, result("z", "w"))],
    )
    assert done.state is JobState.COMPLETED and done.result is not None
    assert done.result.text == SEPARATOR.join("xyzw") and [p.index for p in done.result.pages] == [0, 1, 2, 3]
    assert done.result.usage.completion_tokens == 8
    assert merge_records(PARENT, [child("a", JobState.COMPLETED, 2), None]).state is JobState.FAILED
    assert (
        merge_records(PARENT, [child("a", JobState.CANCELLED), child("b", JobState.RUNNING)]).state
        is JobState.CANCELLED
    )


def collect(parent: JobRecord, children: dict[str, list[JobEvent]]) -> list[JobEvent]:
    async def events_of(job_id: str) -> AsyncIterator[JobEvent]:
        for event in children[job_id]:
            yield event

    async def read() -> list[JobEvent]:
        return [event async for event in merge_events(parent, events_of)]

    return asyncio.run(read())


def child_run(first: str, second: str, *, first_text: bool = True) -> list[JobEvent]:
    return [
        JobStarted(pages_total=2),
        *([TextDelta(page=0, text=first)] if first_text else []),
        PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop", result=page(0, first)),
        TextDelta(page=1, text=SEPARATOR + second),
        PageFinished(page=1, pages_done=2, pages_total=2, finish_reason="stop", result=page(1, second)),
        JobCompleted(result=result(first, second)),
    ]


def test_the_parent_stream_is_its_children_in_page_order_with_their_separator() -> None:
    events = collect(PARENT, {"a": child_run("x", "y"), "b": child_run("z", "w")})
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    (completed,) = [event for event in events if isinstance(event, JobCompleted)]
    assert text == completed.result.text == SEPARATOR.join("xyzw")
    assert [event.pages_total for event in events if isinstance(event, JobStarted)] == [4]
    finished = [(e.page, e.pages_done, e.pages_total) for e in events if isinstance(e, PageFinished)]
    assert finished == [(0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 4, 4)]
    assert [e.page for e in events if isinstance(e, TextDelta)] == [0, 1, 2, 3]


def test_a_child_whose_first_page_wrote_nothing_still_gets_its_separator() -> None:
    events = collect(PARENT, {"a": child_run("x", "y"), "b": child_run("", "w", first_text=False)})
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert text == events[-1].result.text == SEPARATOR.join(["x", "y", "", "w"])


def test_a_cancelled_child_ends_the_parent_stream() -> None:
    events = collect(PARENT, {"a": [JobStarted(pages_total=2), JobCancelled()], "b": child_run("z", "w")})
    assert isinstance(events[-1], JobCancelled) and not any(isinstance(e, JobCompleted) for e in events)

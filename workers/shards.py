"""Large Celery-mode jobs in shards: page ranges that run as jobs of their own, on any worker, side by side.

A job of more than `shard_pages` pages becomes a parent record and one child job per range of `shard_pages`
pages. Each child is an ordinary job (its own message, claim, events and durable pages, so a lost worker costs
only its child's pages in flight); the parent has no run of its own. What readers see of the parent is made
from its children, in page order: `merge_records` for its record, `merge_events` for its events (a child's
text comes after the children before it have finished, as a page's comes after the pages before it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import msgspec

from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, PageResult, Usage
from workers.events import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobStarted,
    PageFinished,
    TextDelta,
)
from workers.jobs import JobRecord, JobState, Shard


def split_request(request: OcrRequest, shard_pages: int) -> list[tuple[int, OcrRequest]]:
    """(first page, request) of each range of `shard_pages` consecutive pages across the request's documents;
    the request alone when it has no more pages than that (or `shard_pages` is 0: no sharding)."""
    if shard_pages <= 0 or request.page_total <= shard_pages:
        return [(0, request)]
    pages = [(number, page) for number, doc in enumerate(request.documents) for page in doc.selected_pages]
    shards = []
    for first in range(0, len(pages), shard_pages):
        chunk = pages[first : first + shard_pages]
        numbers = sorted({number for number, _ in chunk})
        documents = tuple(
            msgspec.structs.replace(
                request.documents[number], pages=tuple(page for owner, page in chunk if owner == number)
            )
            for number in numbers
        )
        shards.append((first, msgspec.structs.replace(request, documents=documents, first_page=first)))
    return shards


def _moved(page: PageResult, first: int) -> PageResult:
    return msgspec.structs.replace(page, index=page.index + first)


def merge_results(results: Sequence[OcrResult], shards: Sequence[Shard], separator: str) -> OcrResult:
    usage = Usage()
    for result in results:
        usage.add(result.usage)
    return OcrResult(
        text=separator.join(result.text for result in results),
        pages=[
            _moved(page, shard.first_page)
            for result, shard in zip(results, shards, strict=True)
            for page in result.pages
        ],
        usage=usage,
        finish_reason="length" if any(result.finish_reason == "length" for result in results) else "stop",
    )


def merge_records(parent: JobRecord, children: Sequence[JobRecord | None]) -> JobRecord:
    """The parent's record as its children's records make it: failed or cancelled once one child is (a child
    gone before its parent counts as failed), completed when all are, queued while all wait, else running."""
    assert parent.sharding is not None
    merged = msgspec.structs.replace(parent, pages_done=sum(child.pages_done for child in children if child))
    states = [child.state if child else JobState.FAILED for child in children]
    ended = [child.finished_at for child in children if child and child.finished_at]
    if JobState.FAILED in states:
        failed = next((child for child in children if child and child.state is JobState.FAILED), None)
        merged.state, merged.error = JobState.FAILED, failed.error if failed else None
    elif JobState.CANCELLED in states:
        merged.state = JobState.CANCELLED
    elif all(state is JobState.COMPLETED for state in states):
        results = [child.result for child in children if child and child.result]
        merged.state = JobState.COMPLETED
        merged.result = merge_results(results, parent.sharding.shards, parent.sharding.separator)
    else:
        merged.state = JobState.QUEUED if all(state is JobState.QUEUED for state in states) else JobState.RUNNING
    if merged.state.terminal:
        merged.finished_at = max(ended, default=None)
    return merged


async def merge_events(
    parent: JobRecord, events_of: Callable[[str], AsyncIterator[JobEvent]]
) -> AsyncIterator[JobEvent]:
    """The parent's events: its children's, one child after the other, pages renumbered, the page separator
    between children, one `started` and one terminal event; a failed or cancelled child ends it."""
    assert parent.sharding is not None
    sharding = parent.sharding
    started, done = False, 0
    results: list[OcrResult] = []
    for number, shard in enumerate(sharding.shards):
        separated = number == 0 or not sharding.separator
        before = len(results)
        async for event in events_of(shard.job_id):
            match event:
                case JobStarted():
                    if not started:
                        started = True
                        yield JobStarted(pages_total=parent.pages_total)
                case TextDelta(page=page, text=text, logprobs=tokens):
                    if not separated:
                        text, separated = sharding.separator + text, True
                    yield TextDelta(page=page + shard.first_page, text=text, logprobs=tokens)
                case PageFinished(page=page, finish_reason=reason, result=result):
                    done += 1
                    yield PageFinished(
                        page=page + shard.first_page,
                        pages_done=done,
                        pages_total=parent.pages_total,
                        finish_reason=reason,
                        result=_moved(result, shard.first_page) if result else None,
                    )
                case JobCompleted(result=result):
                    if not separated:
                        yield TextDelta(page=shard.first_page, text=sharding.separator)
                    results.append(result)
                case JobFailed() | JobCancelled():
                    yield event
                    return
        if len(results) == before:  # the child is gone (deleted, or expired) before it ended
            return
    yield JobCompleted(result=merge_results(results, sharding.shards, sharding.separator))

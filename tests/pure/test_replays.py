"""A rerun's repeated text is dropped from the event stream, whatever the split of its deltas."""

from __future__ import annotations

from ocr_engine.results import TokenLogprob
from workers.events import JobEvent, JobRequeued, JobStarted, PageFinished, TextDelta
from workers.replays import ReplayFilter


def read(events: list[JobEvent]) -> list[JobEvent]:
    once = ReplayFilter()
    return [kept for event in events if (kept := once(event)) is not None]


def text(events: list[JobEvent]) -> dict[int, str]:
    pages: dict[int, str] = {}
    for event in events:
        if isinstance(event, TextDelta):
            pages[event.page] = pages.get(event.page, "") + event.text
    return pages


def run(pages: dict[int, str], chunk: int) -> list[JobEvent]:
    """The deltas of a run that writes `pages` in pieces of `chunk` characters."""
    return [
        TextDelta(page=page, text=body[start : start + chunk])
        for page, body in pages.items()
        for start in range(0, len(body), chunk)
    ]


def test_the_text_of_a_rerun_continues_where_the_first_run_stopped() -> None:
    full = {0: "Invoice 2026-11-24", 1: "\n\nTotal: 12.50 EUR"}
    first = run({0: full[0], 1: full[1][:5]}, chunk=4)  # page 0 done, page 1 begun, then the worker was lost
    events = [
        JobStarted(pages_total=2),
        *first,
        JobRequeued(worker="w1", reason="lost"),
        JobStarted(pages_total=2),
        *run(full, chunk=3),  # the rerun splits its deltas differently
        PageFinished(page=1, pages_done=2, pages_total=2, finish_reason="stop"),
    ]
    seen = read(events)
    assert text(seen) == full
    assert sum(isinstance(event, JobStarted) for event in seen) == 1
    assert isinstance(seen[-1], PageFinished)


def test_requeued_twice_and_without_a_requeue_nothing_is_lost_or_doubled() -> None:
    full = {0: "abcdefghij"}
    events = [
        *run({0: "abc"}, 2),
        JobRequeued(worker="w1", reason="lost"),
        *run({0: "abcdef"}, 1),
        JobRequeued(worker="w2", reason="lost"),
        *run(full, 4),
    ]
    assert text(read(events)) == full
    plain = run(full, 3)
    assert read(plain) == plain


def test_tokens_are_replayed_once_too_even_in_deltas_without_text() -> None:
    """With log probabilities a delta carries tokens, some with no text yet (a layout page's): after a requeue
    each token reaches readers once, those of a delta half seen before included."""
    tokens = [TokenLogprob(token_id=index, logprob=-0.5) for index in range(6)]
    first = [TextDelta(page=0, text="", logprobs=tokens[:2]), TextDelta(page=0, text="ab", logprobs=tokens[2:3])]
    rerun = [TextDelta(page=0, text="", logprobs=tokens[:1]), TextDelta(page=0, text="abc", logprobs=tokens[1:4])]
    rest = [TextDelta(page=0, text="", logprobs=tokens[4:])]
    events = read([*first, JobRequeued(worker="w1", reason="lost"), *rerun, *rest])
    seen = [token for event in events if isinstance(event, TextDelta) for token in event.logprobs]
    assert seen == tokens
    assert text(events) == {0: "abc"}

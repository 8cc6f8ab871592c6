"""The page prefetcher: batches in order, errors in their turn, bounded read-ahead, and a clean stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ocr_engine.prefetch import BatchPrefetcher


def test_batches_come_in_order_with_a_short_last_one():
    prefetcher = BatchPrefetcher(lambda n: n * 10, workers=3)
    assert list(prefetcher.run(range(7), 3)) == [[0, 10, 20], [30, 40, 50], [60]]
    assert list(prefetcher.run([], 3)) == []


def pages_then_unreadable() -> Iterator[int]:
    """Pages 0-2, then page 3 cannot be read (rasterized)."""
    yield from (0, 1, 2)
    raise OSError("page 3 cannot be rasterized")


def broken_at(page: int) -> Callable[[int], int]:
    def prepare(n: int) -> int:
        if n == page:
            raise ValueError(f"page {page} is broken")
        return n

    return prepare


def test_a_page_that_fails_to_prepare_fails_its_batch_after_the_earlier_ones():
    batches = BatchPrefetcher(broken_at(4)).run(range(6), 2)
    assert next(batches) == [0, 1] and next(batches) == [2, 3]
    with pytest.raises(ValueError, match="page 4"):
        next(batches)


def test_an_error_reading_the_pages_reaches_the_consumer():
    batches = BatchPrefetcher(lambda n: n).run(pages_then_unreadable(), 2)
    assert next(batches) == [0, 1]
    with pytest.raises(OSError, match="page 3"):
        next(batches)


def test_an_earlier_pages_error_comes_before_a_later_reading_error():
    batches = BatchPrefetcher(broken_at(2)).run(pages_then_unreadable(), 2)
    assert next(batches) == [0, 1]
    with pytest.raises(ValueError, match="page 2"):
        next(batches)


def test_reading_runs_at_most_one_batch_ahead_of_the_consumer():
    read: list[int] = []
    at_bound = threading.Event()

    def pages() -> Iterator[int]:
        for n in range(100):
            read.append(n)
            if len(read) == 12:
                at_bound.set()
            yield n

    batches = BatchPrefetcher(lambda n: n).run(pages(), 4)
    assert next(batches) == [0, 1, 2, 3]
    next(batches)  # batch two is held: the feeder may read batch three, and no further
    assert at_bound.wait(10)
    time.sleep(0.3)  # room for a feeder that would read on; not a timing assertion
    assert len(read) == 12
    batches.close()


def test_closing_early_stops_the_feeder_and_the_workers():
    started = threading.Event()

    def pages() -> Iterator[int]:
        started.set()
        yield from range(1_000_000)

    before = threading.active_count()
    batches = BatchPrefetcher(lambda n: n, workers=2).run(pages(), 2)
    assert next(batches) == [0, 1] and started.is_set()
    batches.close()
    assert threading.active_count() == before

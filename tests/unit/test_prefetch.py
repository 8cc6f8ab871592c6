"""The page prefetcher: batches in order, errors in their turn, bounded read-ahead, and a clean stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ocr_engine.prefetch import BatchPrefetcher


def test_batches_come_in_order_with_a_short_last_one():
    prefetcher = BatchPrefetcher(lambda n: n * 10, workers=3)
    assert list(prefetcher.run(range(7), 3)) == [[0, 10, 20], [30, 40, 50], [60]]
    assert list(prefetcher.run([], 3)) == []


def test_a_page_that_fails_to_prepare_fails_its_batch_after_the_earlier_ones():
    def prepare(n: int) -> int:
        if n == 4:
            raise ValueError("page 4 is broken")
        return n

    batches = BatchPrefetcher(prepare).run(range(6), 2)
    assert next(batches) == [0, 1] and next(batches) == [2, 3]
    with pytest.raises(ValueError, match="page 4"):
        next(batches)


def test_an_error_reading_the_pages_reaches_the_consumer():
    def pages() -> Iterator[int]:
        yield from (0, 1, 2)
        raise OSError("page 3 cannot be rasterized")

    batches = BatchPrefetcher(lambda n: n).run(pages(), 2)
    assert next(batches) == [0, 1]
    with pytest.raises(OSError, match="page 3"):
        next(batches)


def test_reading_runs_at_most_one_batch_ahead_of_the_consumer():
    read: list[int] = []
    lock = threading.Lock()

    def pages() -> Iterator[int]:
        for n in range(100):
            with lock:
                read.append(n)
            yield n

    batches = BatchPrefetcher(lambda n: n).run(pages(), 4)
    assert next(batches) == [0, 1, 2, 3]
    next(batches)  # the feeder may now read batch three while batch two is held, but no further
    with lock:
        assert len(read) <= 12
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

"""Keep page preparation off the model's critical path.

Rasterizing and resizing a page costs tens of milliseconds of CPU. The pages of a batch are prepared
concurrently (Pillow and PyMuPDF release the GIL while they work), and the next batch is prepared while the
model runs on the current one, so an accelerator waits for pages only at the start of a job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")


class BatchPrefetcher(Generic[Item, Prepared]):
    def __init__(self, prepare: Callable[[Item], Prepared], workers: int = 2) -> None:
        self.prepare = prepare
        self.workers = max(1, workers)

    def run(self, batches: Iterable[list[Item]]) -> Iterator[list[Prepared]]:
        """Prepared batches in order; the source iterator is only ever advanced by one thread."""
        source = iter(batches)
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="ocr-prepare") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="ocr-prefetch") as ahead,
        ):

            def next_batch() -> list[Prepared] | None:
                chunk = next(source, None)
                return None if chunk is None else list(pool.map(self.prepare, chunk))

            pending = ahead.submit(next_batch)
            try:
                while (batch := pending.result()) is not None:
                    pending = ahead.submit(next_batch)
                    yield batch
            finally:
                pending.cancel()

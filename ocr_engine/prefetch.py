"""Keep page preparation off the model's critical path.

Rasterizing and resizing a page costs tens of milliseconds of CPU. One feeder thread reads the pages (a PDF is
rasterized lazily, page by page, as it is read) and hands each one to the prepare workers as soon as it is read,
so rasterizing a page overlaps with preparing the one before it, and a worker that finishes early starts on the
next batch's pages instead of waiting at a batch boundary. Pillow and PyMuPDF release the GIL while they work.
At most one batch is read ahead of the batch the model is running, which bounds memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue
from typing import Generic, TypeVar

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")

_END = object()  # the feeder read the last item


class BatchPrefetcher(Generic[Item, Prepared]):
    def __init__(self, prepare: Callable[[Item], Prepared], workers: int = 2) -> None:
        self.prepare = prepare
        self.workers = max(1, workers)

    def run(self, items: Iterable[Item], batch_size: int) -> Iterator[list[Prepared]]:
        """Prepared batches of up to `batch_size` items, in order. Only the feeder thread advances `items`; an
        error reading an item or preparing one is raised here, in its batch's turn."""
        batch_size = max(1, batch_size)
        room = threading.Semaphore(2 * batch_size)  # the batch being consumed and the one read ahead
        entries: SimpleQueue[Future[Prepared] | BaseException | object] = SimpleQueue()
        stop = threading.Event()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ocr-prepare")
        feeder = threading.Thread(
            target=self._feed, args=(iter(items), pool, entries, room, stop), name="ocr-prefetch", daemon=True
        )
        feeder.start()
        try:
            finished = False
            while not finished:
                futures: list[Future[Prepared]] = []
                while len(futures) < batch_size:
                    entry = entries.get()
                    if entry is _END:
                        finished = True
                        break
                    if isinstance(entry, BaseException):
                        for future in futures:  # an earlier page's own error comes first
                            future.result()
                        raise entry
                    futures.append(entry)  # type: ignore[arg-type]
                if futures:
                    yield [future.result() for future in futures]
                    for _ in futures:
                        room.release()
        finally:
            stop.set()
            room.release()  # a feeder waiting for room wakes, sees `stop` and ends
            feeder.join()
            pool.shutdown(cancel_futures=True)

    def _feed(
        self,
        items: Iterator[Item],
        pool: ThreadPoolExecutor,
        entries: SimpleQueue[Future[Prepared] | BaseException | object],
        room: threading.Semaphore,
        stop: threading.Event,
    ) -> None:
        try:
            while room.acquire() and not stop.is_set():
                item = next(items, _END)
                if item is _END:
                    break
                entries.put(pool.submit(self.prepare, item))  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the consumer, which raises it in order
            entries.put(exc)
            return
        entries.put(_END)

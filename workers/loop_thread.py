"""An asyncio event loop on a thread of its own: a worker process's Redis I/O runs there.

The job store and the registry are written once, as coroutines (the API awaits them on its own loop). A worker
runs its jobs on threads: they call the same coroutines here and wait for the result, and the heartbeat runs as
a task beside them. One loop, one connection pool, for the whole process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "ocr-io") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `work` on the loop and wait for its result (or its exception); never from the loop itself."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def spawn(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        """Start `work` on the loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what still runs on the loop (waiting at most `timeout` seconds for it), then stop and close it."""

        async def cancel_the_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                self.call(cancel_the_rest(), timeout)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

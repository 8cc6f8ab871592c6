"""The job queue of the embedded server: job threads in this process, in two lanes.

Interactive and background jobs have a lane each, `concurrency` threads apiece, so a chat never waits for a
thread behind long background jobs. Every job thread feeds the one engine, whose scheduler decodes the pages of
all of them together.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from workers.jobs import JobRecord


class ThreadQueue:
    def __init__(self, concurrency: int) -> None:
        self._concurrency = max(1, concurrency)
        self._lanes: dict[bool, queue.Queue[str | None]] = {False: queue.Queue(), True: queue.Queue()}
        self._threads: list[threading.Thread] = []

    def start(self, run: Callable[[str], None]) -> None:
        """Start the job threads; each runs `run(job_id)` for the jobs of its lane, one after another."""
        for background, lane in self._lanes.items():
            for number in range(self._concurrency):
                name = f"ocr-{'background' if background else 'interactive'}-{number}"
                thread = threading.Thread(target=self._serve, args=(lane, run), name=name, daemon=True)
                self._threads.append(thread)
                thread.start()

    async def put(self, record: JobRecord) -> None:
        self._lanes[record.background].put(record.id)

    async def revoke(self, job_id: str) -> None:
        """Nothing to do: a job cancelled while it waits has ended, and its thread skips it."""

    def waiting(self) -> int:
        return sum(lane.qsize() for lane in self._lanes.values())

    def take_waiting(self) -> list[str]:
        """Empty both lanes (no job thread will run them: the model failed to load)."""
        taken = []
        for lane in self._lanes.values():
            while True:
                try:
                    job_id = lane.get_nowait()
                except queue.Empty:
                    break
                if job_id is not None:
                    taken.append(job_id)
        return taken

    def stop(self) -> list[threading.Thread]:
        """Ask every job thread to stop after its job; the threads, to join."""
        for lane in self._lanes.values():
            for _ in range(self._concurrency):
                lane.put(None)
        return list(self._threads)

    @staticmethod
    def _serve(lane: queue.Queue[str | None], run: Callable[[str], None]) -> None:
        while (job_id := lane.get()) is not None:
            run(job_id)

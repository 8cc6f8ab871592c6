"""A worker's running jobs when Redis fails a round: the deltas wait in their outboxes, in order, and go out with
the next round; the rounds go on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import pytest

from ocr_engine.errors import ServiceUnavailable
from workers.events import TextDelta
from workers.redis_store import RedisJobStore
from workers.running_jobs import RunningJobs

pytestmark = pytest.mark.anyio


class FlakyStore:
    """Fails the first `failures` rounds of writes (each after a wait, while its job goes on writing), then keeps
    what it is sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[tuple[str, str]] = []
        self.writing = asyncio.Event()  # a write is in flight

    async def append_deltas(self, deltas: Sequence[tuple[str, TextDelta]], *, owner: str) -> list[bool]:
        if self.failures:
            self.failures -= 1
            self.writing.set()
            await asyncio.sleep(0.02)
            raise ServiceUnavailable("cannot reach Redis")
        self.written += [(job_id, delta.text) for job_id, delta in deltas]
        return [True] * len(deltas)

    async def cancels_and_owners(self, job_ids: Sequence[str]) -> list[tuple[bool, str | None]]:
        return [(False, "me")] * len(job_ids)


async def test_deltas_of_a_failed_round_go_out_with_the_next_in_order() -> None:
    store = FlakyStore(failures=2)
    running = RunningJobs(cast(RedisJobStore, store), "me", poll_s=0.01, flush_s=0.01)
    job = running.start("j")
    job.outbox.extend(TextDelta(page=0, text=text) for text in "ab")
    task = asyncio.create_task(running.run())
    try:
        await store.writing.wait()
        job.outbox.append(TextDelta(page=0, text="c"))  # while "a" and "b" are out in a round that will fail
        for _ in range(200):
            if len(store.written) == 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert store.written == [("j", "a"), ("j", "b"), ("j", "c")]

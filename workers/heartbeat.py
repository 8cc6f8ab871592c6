"""A Celery worker's heartbeat: its report in the registry, device-switch commands, and recovery of lost workers'
jobs, as one task on the worker's I/O loop (`workers.loop_thread`).

It runs beside the jobs, so a worker busy with a long document still reports, still answers a switch (which
itself waits for the step in flight, on a thread), and is never seen as lost. Nothing that goes wrong in one
round stops it: a dead heartbeat would make a working worker look lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from ocr_engine.errors import ServiceUnavailable
from workers.redis_client import RedisConnection
from workers.registry import WorkerRegistry
from workers.reporter import WorkerReporter
from workers.switching import SwitchCommand, next_command, reply
from workers.watchdog import RESTART_EXIT

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        reporter: WorkerReporter,
        registry: WorkerRegistry,
        *,
        interval: float,
        recover: Callable[[], Awaitable[object]],
    ) -> None:
        self.reporter = reporter
        self.registry = registry
        self.connection: RedisConnection = registry.connection
        self.interval = interval
        self.recover = recover
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._one_switch = asyncio.Lock()
        self._switches: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="ocr-heartbeat")

    async def beat(self) -> None:
        """Report now (the worker's state or jobs changed), not at the next interval. Describing the devices
        reads /proc and asks CUDA: on a thread."""
        await self.registry.beat(await asyncio.to_thread(self.reporter.snapshot))

    async def stop(self) -> None:
        """Leave the registry (a worker that stops cleanly is gone, not lost). A cancelled Redis call may end in an
        error of its own, or in nothing (the round then ends at its next check): whatever the rounds end with, the
        worker leaves."""
        self._stopping = True
        tasks = [task for task in [self._task, *self._switches] if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.registry.remove(self.reporter.worker_id)
        except Exception as exc:
            log.warning("could not leave the worker registry: %s", exc)

    async def _run(self) -> None:
        while not self._stopping:  # not the cancellation alone: redis-py may swallow one that lands in its call
            try:
                await self.beat()
                await self.recover()
                # waiting for a command is also the pause between two heartbeats
                command = await next_command(self.connection, self.reporter.worker_id, self.interval)
            except Exception as exc:  # Redis away: one line; anything else: its traceback too
                if self._stopping:
                    return
                log.warning("heartbeat round failed: %s", exc, exc_info=not isinstance(exc, ServiceUnavailable))
                await asyncio.sleep(self.interval)
                continue
            if command is not None:
                task = asyncio.create_task(self._switch(command))
                self._switches.add(task)
                task.add_done_callback(self._switches.discard)

    async def _switch(self, command: SwitchCommand) -> None:
        async with self._one_switch:  # one move at a time; it waits for the step in flight, on a thread
            result = await asyncio.to_thread(self.reporter.switch, command.device)
        try:
            await self.beat()
            await reply(self.connection, command.command_id, result)
        except Exception as exc:
            log.warning("could not report the device switch: %s", exc)
        if self.reporter.state == "failed":
            # the model is in no state to run jobs: exit, so the supervisor restarts the worker and the
            # registry's recovery hands its jobs to other workers
            log.error("the model is unusable after a failed device switch; exiting")
            os._exit(RESTART_EXIT)

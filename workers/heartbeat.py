"""A Celery worker's background thread: heartbeats, device-switch commands, and recovery of lost workers' jobs.

It runs beside the job (the solo pool runs jobs on the main thread), so a worker busy with a long document
still reports, still answers a switch (which itself waits for the batch in flight), and is never seen as lost.
Nothing that goes wrong in one round stops the thread: a dead heartbeat would make a working worker look lost.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis

from workers.registry import WorkerRegistry
from workers.reporter import WorkerReporter
from workers.switching import SwitchCommand, next_command, reply

log = logging.getLogger(__name__)
# the exit status of a worker whose model was left unusable by a failed device switch
UNUSABLE_MODEL_EXIT = 70


class Heartbeat:
    def __init__(
        self,
        reporter: WorkerReporter,
        registry: WorkerRegistry,
        *,
        interval: float,
        recover: Callable[[], object],
    ) -> None:
        self.reporter = reporter
        self.registry = registry
        self.interval = interval
        self.recover = recover
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ocr-heartbeat", daemon=True)
        # one switch at a time, off this thread: waiting for a batch must not delay heartbeats
        self._switches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocr-switch")

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        """Report now (the worker's state or job changed), not at the next interval."""
        self.registry.beat(self.reporter.snapshot())

    def stop(self) -> None:
        """Leave the registry (a worker that stops cleanly is gone, not lost)."""
        self._stopping.set()
        self._thread.join(self.interval + 5)
        self._switches.shutdown(wait=False, cancel_futures=True)
        try:
            self.registry.remove(self.reporter.worker_id)
        except redis.RedisError as exc:
            log.warning("could not leave the worker registry: %s", exc)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.beat()
                self.recover()
                # waiting for a command is also the pause between two heartbeats
                command = next_command(self.registry.client, self.reporter.worker_id, self.interval)
            except Exception as exc:
                log.warning("heartbeat round failed: %s", exc, exc_info=not isinstance(exc, redis.RedisError))
                self._stopping.wait(self.interval)
                continue
            if command is not None:
                self._switches.submit(self._switch, command)

    def _switch(self, command: SwitchCommand) -> None:
        result = self.reporter.switch(command.device)
        try:
            self.beat()
            reply(self.registry.client, command.command_id, result)
        except Exception as exc:
            log.warning("could not report the device switch: %s", exc)
        if self.reporter.state == "failed":
            # the model is in no state to run jobs: exit, so the supervisor restarts the worker and the
            # registry's recovery hands its job to another one
            log.error("the model is unusable after a failed device switch; exiting")
            os._exit(UNUSABLE_MODEL_EXIT)

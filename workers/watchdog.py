"""A hard time limit: a timer that acts when a block outlives its budget, whether or not the block returns.

The soft limit is checked between decode steps; a wedged accelerator call never gets there. Celery's own hard
limit needs a prefork pool, and a GPU worker runs the solo pool (one process owns the model).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

HARD_LIMIT_GRACE_S = 60.0
"""How far past OCRSERVE_JOB_TIME_LIMIT a job, or one model step, may run before it counts as stuck."""
RESTART_EXIT = 70
"""The exit status of a worker that can no longer run jobs (stuck, unusable model, broker lost): its supervisor
restarts it, and the registry's recovery hands its jobs to other workers."""


class Watchdog:
    def __init__(self, seconds: float, on_expire: Callable[[], None]) -> None:
        self._timer = threading.Timer(seconds, on_expire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._timer.cancel()

"""What a worker tells the registry about itself: state, model and device, the job it runs, its recent pace."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from ocr_engine.errors import ModelUnavailable, OcrError
from workers.events import JobEvent, PageFinished
from workers.model_host import ModelHost
from workers.registry import SwitchResult, WorkerInfo, WorkerState

log = logging.getLogger(__name__)

PACE_WINDOW_S = 60.0


class WorkerReporter:
    """Thread-safe: jobs report from the job thread, heartbeats and status reads snapshot from others."""

    def __init__(self, kind: Literal["celery", "embedded"], model: str) -> None:
        host = socket.gethostname()
        self.worker_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.kind = kind
        self.model = model
        self.host_name = host
        self.started_at = time.time()
        self.state: WorkerState = "loading"
        self.message = "loading the model"
        self.host: ModelHost | None = None
        self.jobs: dict[str, None] = {}  # running now, in the order they started
        self.pages_done = 0
        self._page_times: deque[float] = deque()
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # a job left `jobs`
        self._switching = threading.Lock()  # one move at a time, whoever asks

    def ready(self, host: ModelHost) -> None:
        self.host, self.state, self.message = host, "ready", "ready"

    def failed(self, message: str) -> None:
        self.state, self.message = "failed", message

    def switch(self, requested: str) -> SwitchResult:
        """Move the hosted model to `requested` after the batch in flight; jobs wait meanwhile, none fail."""
        host = self.host
        if host is None:
            return self._switch_result(False, None, None, f"the model is not loaded ({self.message})")
        with self._switching:
            before = host.device_name
            self.state, self.message = "switching", f"moving the model to {requested}"
            try:
                previous, current = host.switch(requested)
            except ModelUnavailable as exc:
                log.error("device switch to %s left the model unusable: %s", requested, exc.message)
                self.failed(exc.message)
                return self._switch_result(False, before, None, exc.message)
            except Exception as exc:
                reason = exc.message if isinstance(exc, OcrError) else str(exc)
                log.warning("device switch to %s failed: %s", requested, reason, exc_info=not isinstance(exc, OcrError))
                self.state, self.message = "ready", "ready"
                now = host.device_name
                return self._switch_result(
                    False, before, now, f"could not move the model to {requested}: {reason}; it stays on {now}"
                )
            self.state, self.message = "ready", "ready"
        message = f"already on {current}" if previous == current else f"moved the model from {previous} to {current}"
        return self._switch_result(True, previous, current, message)

    def _switch_result(self, success: bool, previous: str | None, current: str | None, message: str) -> SwitchResult:
        return SwitchResult(
            worker_id=self.worker_id,
            success=success,
            previous_device=previous,
            current_device=current,
            message=message,
        )

    @contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        """Count the job as running meanwhile. A second run of the same job waits here until the first ends:
        one job never runs twice side by side on one worker."""
        with self._ended:
            self._ended.wait_for(lambda: job_id not in self.jobs)
            self.jobs[job_id] = None
        try:
            yield
        finally:
            with self._ended:
                self.jobs.pop(job_id, None)
                self._ended.notify_all()

    def observe(self, event: JobEvent) -> None:
        """Count finished pages (the pace over the last minute comes from their times)."""
        if isinstance(event, PageFinished):
            with self._lock:
                self.pages_done += 1
                self._page_times.append(time.monotonic())

    def pages_per_second(self) -> float:
        with self._lock:
            cutoff = time.monotonic() - PACE_WINDOW_S
            while self._page_times and self._page_times[0] < cutoff:
                self._page_times.popleft()
            return round(len(self._page_times) / PACE_WINDOW_S, 3)

    def snapshot(self) -> WorkerInfo:
        host = self.host
        with self._lock:
            jobs = list(self.jobs)
        stats = host.stats() if host else None
        devices = host.available_devices() if host else []
        device = next((d for d in devices if host and d.device == host.device_name), None)
        return WorkerInfo(
            worker_id=self.worker_id,
            host=self.host_name,
            pid=os.getpid(),
            kind=self.kind,
            model=self.model,
            family=host.family if host else None,
            state=self.state,
            message=self.message,
            device=device,
            dtype=host.dtype if host else None,
            available_devices=devices,
            jobs_in_flight=len(jobs),
            current_job=jobs[0] if jobs else None,
            running_sequences=stats.running if stats else 0,
            waiting_sequences=stats.waiting + stats.prefilling if stats else 0,
            kv_cache_tokens=stats.kv_cache_tokens if stats else 0,
            kv_cache_budget=stats.kv_cache_budget if stats else None,
            pages_done=self.pages_done,
            pages_per_second=self.pages_per_second(),
            started_at=self.started_at,
            last_seen=time.time(),
        )

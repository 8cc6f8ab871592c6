"""Prometheus metrics of one app instance (a private registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from collections import OrderedDict

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ocr_engine.results import OcrResult, Usage
from workers.registry import WorkerInfo

WORKER_STATES = ("loading", "ready", "switching", "failed", "lost")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ocrserve_requests",
            "Requests by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.pages = Counter("ocrserve_pages", "Pages OCR'd", registry=self.registry)
        self.prompt_tokens = Counter(
            "ocrserve_prompt_tokens", "Prompt tokens (image tokens included)", registry=self.registry
        )
        self.completion_tokens = Counter("ocrserve_completion_tokens", "Generated tokens", registry=self.registry)
        self.latency = Histogram(
            "ocrserve_job_seconds",
            "Time from submit to the final event",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.queue_depth = Gauge("ocrserve_queue_depth", "Jobs waiting for the engine", registry=self.registry)
        self.jobs = Counter(
            "ocrserve_jobs",
            "Jobs by terminal status (completed, failed, cancelled), counted when the API first sees the end",
            ["status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ocrserve_request_seconds",
            "HTTP request duration by route template (a stream lasts until its last byte)",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        # From the worker registry at each scrape: what the workers themselves report, whichever API they serve.
        self.workers = Gauge("ocrserve_workers", "Workers by state", ["state"], registry=self.registry)
        self.worker_pages = Gauge(
            "ocrserve_worker_pages_per_second",
            "Pages per second of each worker over the last minute",
            ["worker", "device"],
            registry=self.registry,
        )
        self.worker_memory_free = Gauge(
            "ocrserve_worker_device_memory_free_bytes",
            "Free memory of the device each worker runs on (GPU: as CUDA reports it; CPU: available memory)",
            ["worker", "device"],
            registry=self.registry,
        )
        self.queued_pages = Gauge(
            "ocrserve_queued_pages", "Pages waiting in each queue", ["queue"], registry=self.registry
        )
        # job ids already counted: a job can be seen ending by several readers (a poll, then a stream replay)
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._max_counted = 10_000

    def record_result(self, pages: int, usage: Usage, seconds: float) -> None:
        self.pages.inc(pages)
        self.prompt_tokens.inc(usage.prompt_tokens)
        self.completion_tokens.inc(usage.completion_tokens)
        self.latency.observe(seconds)

    def record_job_end(
        self, job_id: str, status: str, *, created_at: float, finished_at: float | None, result: OcrResult | None
    ) -> bool:
        """Count a job's end once per job id (pages, tokens and latency too when it completed); False if seen."""
        if job_id in self._counted:
            return False
        self._counted[job_id] = None
        while len(self._counted) > self._max_counted:
            self._counted.popitem(last=False)
        self.jobs.labels(status).inc()
        if result is not None:
            self.record_result(len(result.pages), result.usage, (finished_at or time.time()) - created_at)
        return True

    def render(self, queued: int, queued_pages: dict[str, int], workers: list[WorkerInfo]) -> bytes:
        self.queue_depth.set(queued)
        for queue, pages in queued_pages.items():
            self.queued_pages.labels(queue).set(pages)
        for state in WORKER_STATES:
            self.workers.labels(state).set(sum(worker.state == state for worker in workers))
        self.worker_pages.clear()
        self.worker_memory_free.clear()
        for worker in workers:
            if worker.state == "lost" or worker.device is None:
                continue
            labels = (worker.worker_id, worker.device.device)
            self.worker_pages.labels(*labels).set(worker.pages_per_second)
            if worker.device.memory_free_gb is not None:
                self.worker_memory_free.labels(*labels).set(worker.device.memory_free_gb * 1024**3)
        return generate_latest(self.registry)


def count_requests(app: ASGIApp) -> ASGIApp:
    """ASGI middleware counting each HTTP request by its route template and response status, and timing it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            context = getattr(Litestar.from_scope(scope).state, "context", None)
            if context is not None:
                route = scope.get("path_template", "unmatched")
                context.metrics.requests.labels(route, str(status)).inc()
                context.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)

    return middleware

"""Prometheus metrics of one app instance (a private registry, so several apps can live in one process)."""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ocr_engine.results import Usage


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

    def record_result(self, pages: int, usage: Usage, seconds: float) -> None:
        self.pages.inc(pages)
        self.prompt_tokens.inc(usage.prompt_tokens)
        self.completion_tokens.inc(usage.completion_tokens)
        self.latency.observe(seconds)

    def render(self, queued: int) -> bytes:
        self.queue_depth.set(queued)
        return generate_latest(self.registry)


def count_requests(app: ASGIApp) -> ASGIApp:
    """ASGI middleware counting each HTTP request by its route template and response status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500

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
                context.metrics.requests.labels(scope.get("path_template", "unmatched"), str(status)).inc()

    return middleware

"""Logging shared by the API and the workers: text for people, one JSON object per line for log pipelines.

The current request id and job id live in context variables; a log-record factory copies them onto every
record, so any handler (ours, uvicorn's, Celery's) sees `record.request_id` and `record.job_id`. The API sets
the request id per HTTP request (`X-Request-ID`); the job runner sets both while a job runs. `ocrserve serve`
gives uvicorn's own loggers the same formatter (`ocrserve.cli`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("ocrserve_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("ocrserve_job_id", default=None)

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
# LogRecord attributes that are not "extra" fields passed by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "context"}
_installed = False


@contextlib.contextmanager
def log_context(*, request_id: str | None = None, job_id: str | None = None) -> Iterator[None]:
    """Attach a request id and/or job id to every record logged inside the block (this thread/task only)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if job_id is not None:
        tokens.append((job_id_var, job_id_var.set(job_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def install_record_factory() -> None:
    """Copy the context ids onto every log record (`record.request_id`, `record.job_id`, `record.context`)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        request_id, job_id = request_id_var.get(), job_id_var.get()
        parts = [f"rid={request_id}"] if request_id else []
        if job_id:
            parts.append(f"job={job_id}")
        context = f" [{' '.join(parts)}]" if parts else ""
        record.__dict__.update(request_id=request_id, job_id=job_id, context=context)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, request_id/job_id when known,
    the caller's `extra=` fields, and `exc_info` as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and key not in ("request_id", "job_id"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.__dict__.setdefault("context", "")  # a record made before the factory was installed
        return super().format(record)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def _one_handler_for_the_hub_client() -> None:
    """huggingface_hub gives its logger a stderr handler of its own at import and lets records propagate too, so
    each of its lines (retries of an unreachable hub, say) would print twice, once unformatted: keep ours only."""
    with contextlib.suppress(ImportError):
        from huggingface_hub.utils import logging as hub_logging

        hub = hub_logging.get_logger()
        for old in list(hub.handlers):
            hub.removeHandler(old)


def setup_logging(level: str = "info", log_format: str = "text") -> None:
    """Configure the root logger (replaces `logging.basicConfig`): one stderr handler in the chosen format."""
    install_record_factory()
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _one_handler_for_the_hub_client()

"""The log formats: JSON lines carry the request and job ids; text lines show them as `[rid=… job=…]`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from ocrserve.logs import JsonFormatter, TextFormatter, install_record_factory, log_context, make_formatter


@pytest.fixture
def captured() -> Iterator[logging.Logger]:
    install_record_factory()  # copies the ids onto records (setup_logging does it too)
    logger = logging.getLogger("ocrserve.test.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers.clear()
    logger.propagate = True


def _emit(logger: logging.Logger, formatter: logging.Formatter, log: Callable[[], None]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.handlers = [handler]
    log()
    return stream.getvalue()


def test_json_lines_parse_and_carry_the_ids(captured: logging.Logger) -> None:
    def log() -> None:
        with log_context(request_id="rid-1", job_id="job-1"):
            captured.info("job %s done", "job-1", extra={"pages": 3})
        captured.warning("outside")
        try:
            raise ValueError("boom")
        except ValueError:
            captured.exception("failed")

    lines = _emit(captured, make_formatter("json"), log).splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(entries) == 3
    first = entries[0]
    assert first["message"] == "job job-1 done" and first["level"] == "INFO"
    assert first["logger"] == "ocrserve.test.logs" and first["ts"].endswith("Z")
    assert (first["request_id"], first["job_id"], first["pages"]) == ("rid-1", "job-1", 3)
    assert "request_id" not in entries[1] and "job_id" not in entries[1]
    assert "ValueError: boom" in entries[2]["exc_info"]


def test_text_lines_show_the_ids(captured: logging.Logger) -> None:
    def log() -> None:
        with log_context(request_id="rid-2"):
            captured.info("queued")
        captured.info("plain")

    first, second = _emit(captured, TextFormatter(), log).splitlines()
    assert first.endswith("INFO ocrserve.test.logs [rid=rid-2]: queued")
    assert second.endswith("INFO ocrserve.test.logs: plain")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        make_formatter("xml")
    assert isinstance(make_formatter("json"), JsonFormatter)


def test_a_hub_client_record_prints_once(capfd: pytest.CaptureFixture[str]) -> None:
    """huggingface_hub's own stderr handler is taken off: its records reach stderr through the root handler only."""
    import huggingface_hub.utils.logging  # noqa: F401  (imported first, as model loading does: its handler is on)

    from ocrserve.logs import setup_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging("info")
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        err = capfd.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert err.count("Retrying in 1s") == 1, err

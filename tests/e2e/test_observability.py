"""Request ids in headers and logs (API and worker), and the Prometheus metrics moving, in both modes."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures import ServerHandle, data_url, image_message


@pytest.fixture(scope="module")
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _wait_for_log(path: Path, needle: str, timeout: float = 15.0) -> str:
    """The log line holding `needle` (logs are written by other processes, a moment after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = [line for line in text.splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            assert lines, f"{needle!r} not in {path.name}:\n{text[-4000:]}"
            return "\n".join(lines)
        time.sleep(0.2)


def test_request_id_is_echoed_and_logged_with_the_job(http: httpx.Client, server: ServerHandle, png: bytes) -> None:
    request_id = f"test-rid-{uuid.uuid4()}"
    reply = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": image_message(data_url(png, "image/png")), "max_tokens": 2},
        headers={"X-Request-ID": request_id},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == request_id

    # the API logs the job it queued for the request, with the id in its `[rid=…]` context
    api_line = _wait_for_log(server.log_path, f"[rid={request_id}]")
    job_id = re.search(r"job ([0-9a-f]{32}) queued", api_line).group(1)
    # the worker (the Celery worker's own log, or the embedded worker thread) logs the job with the same id
    celery = server.log_path.name.startswith("celery-api")
    worker_log = server.log_path.parent / "celery-worker.log" if celery else server.log_path
    job_line = _wait_for_log(worker_log, f"job {job_id} (request {request_id})")
    assert f"[rid={request_id} job={job_id}]" in job_line


def test_a_request_id_is_made_when_none_or_a_bad_one_is_sent(http: httpx.Client) -> None:
    made = http.get("/ping").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    replaced = http.get("/ping", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced) and replaced != made


def _sample(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_move_after_a_request(http: httpx.Client, server: ServerHandle, png: bytes) -> None:
    route = '{route="/v1/chat/completions"}'
    before = http.get("/metrics").text
    for family in ("ocrserve_jobs_total", "ocrserve_request_seconds", "ocrserve_queue_depth", "ocrserve_pages"):
        assert f"# TYPE {family.removesuffix('_total')}" in before, family
    reply = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": image_message(data_url(png, "image/png")), "max_tokens": 3},
    )
    assert reply.status_code == 200, reply.text
    after = http.get("/metrics").text
    completed = '{status="completed"}'
    assert _sample(after, "ocrserve_jobs_total", completed) == _sample(before, "ocrserve_jobs_total", completed) + 1
    assert _sample(after, "ocrserve_pages_total") == _sample(before, "ocrserve_pages_total") + 1
    tokens = reply.json()["usage"]["completion_tokens"]
    assert _sample(after, "ocrserve_completion_tokens_total") == (
        _sample(before, "ocrserve_completion_tokens_total") + tokens
    )
    count = "ocrserve_request_seconds_count"
    assert _sample(after, count, route) == _sample(before, count, route) + 1
    assert _sample(after, "ocrserve_job_seconds_count") == _sample(before, "ocrserve_job_seconds_count") + 1


def test_a_polled_background_response_is_counted_once(http: httpx.Client, server: ServerHandle) -> None:
    completed = '{status="completed"}'
    before = _sample(http.get("/metrics").text, "ocrserve_jobs_total", completed)
    created = http.post(
        "/v1/responses", json={"model": server.model, "input": "Hi", "max_output_tokens": 2, "background": True}
    )
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while http.get(f"/v1/responses/{response_id}").json()["status"] in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the background response did not finish"
        time.sleep(0.1)
    http.get(f"/v1/responses/{response_id}")  # a second look at a finished job does not count it again
    assert _sample(http.get("/metrics").text, "ocrserve_jobs_total", completed) == before + 1


def test_metrics_show_the_worker_registry_and_the_queues(http: httpx.Client, server: ServerHandle, png: bytes) -> None:
    reply = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": image_message(data_url(png, "image/png")), "max_tokens": 3},
    )
    assert reply.status_code == 200, reply.text
    [worker] = http.get("/v1/devices/status").json()["workers"]
    text = http.get("/metrics").text
    assert _sample(text, "ocrserve_workers", '{state="ready"}') == 1
    assert _sample(text, "ocrserve_workers", '{state="lost"}') == 0
    labels = f'{{device="cpu",worker="{worker["worker_id"]}"}}'
    assert f"ocrserve_worker_pages_per_second{labels}" in text
    assert _sample(text, "ocrserve_worker_device_memory_free_bytes", labels) > 0
    for queue in ("interactive", "background"):
        assert f'ocrserve_queued_pages{{queue="{queue}"}}' in text

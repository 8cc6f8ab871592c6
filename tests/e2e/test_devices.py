"""/v1/devices: the worker registry over HTTP, switching the model's device while requests go on, admin keys.

CPU-only here: a switch between `cpu` and `auto` goes through the whole path (command, wait for the batch in
flight, move, report) with the CPU as both ends; `gpu:0` does not exist and is refused.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.fixtures import ServerHandle, data_url, image_message


def chat(server: ServerHandle, png: bytes) -> int:
    body = {"model": server.model, "messages": image_message(data_url(png, "image/png")), "max_tokens": 8}
    with server.client() as http:
        return http.post("/v1/chat/completions", json=body).status_code


def test_status_lists_the_worker_with_its_device(server: ServerHandle) -> None:
    with server.client() as http:
        reply = http.get("/v1/devices/status")
    assert reply.status_code == 200, reply.text
    status = reply.json()
    assert status["status"] == "ok", status
    [worker] = status["workers"]
    assert worker["state"] == "ready" and worker["model"] and worker["family"] == "deepseek-ocr-2"
    assert worker["kind"] == status["mode"]
    assert worker["device"]["device"] == "cpu" and worker["device"]["device_type"] == "cpu"
    assert worker["device"]["memory_total_gb"] > 0 and worker["device"]["memory_free_gb"] > 0
    for field in ("worker_id", "host", "pid", "family", "jobs_in_flight", "pages_per_second", "started_at"):
        assert field in worker
    assert worker["last_seen"] >= worker["started_at"]
    [device] = status["available_devices"]
    assert device["device"] == "cpu" and device["workers"] == [worker["worker_id"]]
    assert status["backends"] == ["cpu"]


def stream_chat(server: ServerHandle, png: bytes, first_delta: threading.Event, log: list[tuple[str, float]]) -> str:
    """A streamed chat long enough to be decoding while the switch is asked for; returns the SSE text."""
    body = {
        "model": server.model,
        "messages": image_message(data_url(png, "image/png")),
        "max_tokens": 1500,
        "stream": True,
    }
    chunks = []
    with server.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            chunks.append(line)
            if '"content"' in line:
                first_delta.set()
    log.append(("stream done", time.monotonic()))
    return "\n".join(chunks)


def test_a_switch_during_a_stream_waits_for_its_batch_and_the_stream_completes(
    server: ServerHandle, png: bytes
) -> None:
    first_delta, log = threading.Event(), []
    with ThreadPoolExecutor(max_workers=1) as pool, server.client() as http:
        stream = pool.submit(stream_chat, server, png, first_delta, log)
        assert first_delta.wait(120), "the stream never started"
        log.append(("switch sent", time.monotonic()))
        reply = http.post("/v1/devices/switch", json={"device": "auto"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["success"] is True and (body["previous_device"], body["current_device"]) == ("cpu", "cpu")
        text = stream.result()
    assert [event for event, _ in sorted(log, key=lambda item: item[1])] == ["switch sent", "stream done"]
    assert text.rstrip().endswith("data: [DONE]") and '"error"' not in text


def test_switching_back_and_forth_while_requests_go_on(server: ServerHandle, png: bytes) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool, server.client() as http:
        requests = [pool.submit(chat, server, png) for _ in range(6)]
        for device in ("cpu", "auto", "cpu"):
            reply = http.post("/v1/devices/switch", json={"device": device})
            assert reply.status_code == 200, reply.text
            assert [w["success"] for w in reply.json()["workers"]] == [True]
        assert [request.result() for request in requests] == [200] * 6


def test_an_unavailable_device_or_worker_is_a_400_naming_what_exists(server: ServerHandle) -> None:
    with server.client() as http:
        reply = http.post("/v1/devices/switch", json={"device": "gpu:0"})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["param"] == "device" and "available devices: cpu" in error["message"]

        malformed = http.post("/v1/devices/switch", json={"device": "tpu"})
        assert malformed.status_code == 400 and "cpu, gpu:N or auto" in malformed.json()["error"]["message"]

        unknown = http.post("/v1/devices/switch", json={"device": "cpu", "worker": "nobody"})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "worker"


def test_device_endpoints_need_an_admin_key_when_keys_are_configured(strict_server: ServerHandle) -> None:
    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        assert http.get("/v1/devices/status").status_code == 401
        user = http.get("/v1/devices/status", headers={"Authorization": "Bearer k1"})
        assert user.status_code == 403 and "OCRSERVE_ADMIN_KEYS" in user.json()["error"]["message"]
        assert http.get("/v1/devices/status", headers={"Authorization": "Bearer admin1"}).status_code == 200
        switch = http.post("/v1/devices/switch", json={"device": "auto"}, headers={"Authorization": "Bearer k2"})
        assert switch.status_code == 403

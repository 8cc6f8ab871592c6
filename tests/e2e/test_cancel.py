"""A client that goes away in the middle of a stream cancels its job: the engine is free again soon after."""

from __future__ import annotations

import time

import httpx

from tests.fixtures import ServerHandle, file_message, pdf_bytes

PAGES = 100  # uncancelled, 100 pages x ~3000 tokens keeps a CPU busy for minutes; cancelled, it stops at once
DEADLINE_S = 30.0


def _load(http: httpx.Client) -> int:
    response = http.get("/load")
    assert response.status_code == 200
    return response.json()["server_load"]


def test_disconnect_during_a_stream_cancels_the_job(strict_server: ServerHandle) -> None:
    """Runs on the strict server (default limits allow 100 pages); it keeps the default server free if it fails."""
    body = {
        "model": strict_server.model,
        "messages": file_message(pdf_bytes(PAGES)),
        "max_tokens": 3000,
        "temperature": 0,
        "stream": True,
        "ocr": {"output_format": "raw"},
    }
    with strict_server.client(Authorization="Bearer k1") as http, strict_server.client() as probe:
        assert _load(probe) == 0
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            frames, load_mid_stream = [], None
            for line in response.iter_lines():
                if line.startswith("data: "):
                    frames.append(line)
                if len(frames) == 2:
                    # Probe before leaving the loop: dropping the line iterator closes the connection at once.
                    load_mid_stream = _load(probe)
                    break
            assert len(frames) == 2
            assert "[DONE]" not in frames[-1]
            assert load_mid_stream == 1  # the job is running now
        # leaving the loop and the block closed the connection half-way through the stream

        deadline = time.monotonic() + DEADLINE_S
        while (load := _load(probe)) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert load == 0, f"the job was still running {DEADLINE_S:g}s after the client went away"

        # the worker is healthy afterwards
        reply = http.post(
            "/v1/chat/completions",
            json={"model": strict_server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        )
        assert reply.status_code == 200, reply.text

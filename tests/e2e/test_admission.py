"""Admission control through real servers and the real openai SDK: the per-key request rate and jobs in flight,
shared by two API processes on one private redis-server (no worker, so background jobs stay queued), and the
requests these limits refuse, which the rate does not count; queue backpressure; and the in-memory counters of
embedded mode."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures import (
    SERVED_NAME,
    STARTUP_DEADLINE_S,
    ServerHandle,
    data_url,
    file_message,
    free_port,
    pdf_bytes,
    running_server,
    spawn,
    stop_process,
)

RPM = 6
SLOTS = 2
MAX_QUEUED_PAGES = 4
MAX_QUEUED_INTERACTIVE_PAGES = 2


@pytest.fixture(scope="module")
def api_pair(redis_url: str, tiny_checkpoint: Path, server_logs: Path) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    """Two API processes on the same Redis, with per-key limits; each test uses its own key (and leaves no job
    queued: the background queue is bounded too)."""
    env = {
        "OCRSERVE_REDIS_URL": redis_url,
        "OCRSERVE_API_KEYS": "rate-key,slots-key,refused-key",
        "OCRSERVE_RATE_LIMIT_RPM": str(RPM),
        "OCRSERVE_MAX_CONCURRENT_JOBS": str(SLOTS),
        "OCRSERVE_MAX_QUEUED_PAGES": str(MAX_QUEUED_PAGES),
    }
    with ExitStack() as stack:
        first = stack.enter_context(running_server(tiny_checkpoint, server_logs, "admission-api-1", env))
        second = stack.enter_context(running_server(tiny_checkpoint, server_logs, "admission-api-2", env))
        yield first, second


def sdk(server: ServerHandle, key: str, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, timeout=60.0, **{"max_retries": 0, **options})


def background(client: openai.OpenAI, server: ServerHandle, pages: int = 1) -> str:
    """A background response over a PDF of `pages` pages; with no worker it stays queued."""
    part = {"type": "input_file", "filename": "a.pdf", "file_data": data_url(pdf_bytes(pages), "application/pdf")}
    response = client.responses.create(
        model=server.model, input=[{"role": "user", "content": [part]}], background=True, max_output_tokens=8
    )
    assert response.status == "queued"
    return response.id


def cancel_queued(client: openai.OpenAI, job_ids: list[str]) -> None:
    """Leave no job behind in the queue (the next test may count its pages)."""
    for job_id in job_ids:
        if client.responses.retrieve(job_id).status == "queued":
            client.responses.cancel(job_id)


def assert_too_many(error: openai.APIStatusError, setting: str) -> None:
    assert error.status_code == 429
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["content-type"].startswith("application/json")
    body = error.response.json()["error"]
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded" and body["param"] is None
    assert setting in body["message"]


def test_the_request_rate_is_shared_by_two_api_processes(api_pair: tuple[ServerHandle, ServerHandle]) -> None:
    clients = [sdk(server, "rate-key") for server in api_pair]
    try:
        for index in range(RPM):
            client, server = clients[index % 2], api_pair[index % 2]
            job_id = background(client, server)
            # polls and cancels are not work: they must not use up the budget
            assert client.responses.retrieve(job_id).status == "queued"
            assert client.responses.cancel(job_id).status == "cancelled"
        with pytest.raises(openai.RateLimitError) as refused:
            background(clients[0], api_pair[0])
        assert_too_many(refused.value, f"OCRSERVE_RATE_LIMIT_RPM={RPM}")
        with pytest.raises(openai.RateLimitError):
            clients[1].completions.create(model=api_pair[1].model, prompt="Hi", max_tokens=1)
        assert clients[1].responses.retrieve(job_id).status == "cancelled", "polling is never limited"
    finally:
        for client in clients:
            client.close()


def test_jobs_in_flight_are_shared_by_two_api_processes(api_pair: tuple[ServerHandle, ServerHandle]) -> None:
    first, second = (sdk(server, "slots-key") for server in api_pair)
    held: list[str] = []
    try:
        held.append(background(first, api_pair[0]))
        held.append(background(second, api_pair[1]))
        with pytest.raises(openai.RateLimitError) as refused:
            background(second, api_pair[1])
        assert_too_many(refused.value, f"OCRSERVE_MAX_CONCURRENT_JOBS={SLOTS}")

        # The SDK backs off on the 429 and tries again; a job cancelled meanwhile (by the other API process) frees
        # the slot the retry gets.
        answers: list[httpx.Response] = []

        def on_response(response: httpx.Response) -> None:
            answers.append(response)
            if response.status_code == 429:
                first.responses.cancel(held[0])

        hooks = httpx.Client(event_hooks={"response": [on_response]}, timeout=60.0)
        with sdk(api_pair[1], "slots-key", max_retries=1, http_client=hooks) as retrying:
            held.append(background(retrying, api_pair[1]))
        assert [answer.status_code for answer in answers] == [429, 200]
        assert 1 <= int(answers[0].headers["retry-after"]) <= 60
    finally:
        cancel_queued(first, held)
        first.close()
        second.close()


def test_requests_refused_for_slots_or_a_full_queue_do_not_use_up_the_rate(
    api_pair: tuple[ServerHandle, ServerHandle],
) -> None:
    """The openai SDK retries such refusals every few seconds: counted, they would use up the budget, and the
    client would get the long request-rate wait even after a slot frees."""
    clients = [sdk(server, "refused-key") for server in api_pair]
    held: list[str] = []
    try:
        held.extend(background(client, server) for client, server in zip(clients, api_pair, strict=True))
        for index in range(RPM):  # twice as many refusals as the budget has room for
            client, server = clients[index % 2], api_pair[index % 2]
            with pytest.raises(openai.RateLimitError) as refused:
                background(client, server)
            assert_too_many(refused.value, f"OCRSERVE_MAX_CONCURRENT_JOBS={SLOTS}")
            with pytest.raises(openai.InternalServerError) as full:
                background(client, server, pages=MAX_QUEUED_PAGES)
            assert_queue_full(full.value, f"OCRSERVE_MAX_QUEUED_PAGES={MAX_QUEUED_PAGES}")
        assert clients[0].responses.cancel(held[0]).status == "cancelled"
        held.append(background(clients[1], api_pair[1]))  # the freed slot, and the budget still has room
    finally:
        cancel_queued(clients[0], held)
        for client in clients:
            client.close()


@pytest.fixture(scope="module")
def small_queues(redis_url: str, tiny_checkpoint: Path, server_logs: Path) -> Iterator[ServerHandle]:
    """An API process with small queue bounds, on its own Redis database (its queues start empty), no worker."""
    env = {
        "OCRSERVE_REDIS_URL": redis_url.rpartition("/")[0] + "/1",
        "OCRSERVE_MAX_QUEUED_PAGES": str(MAX_QUEUED_PAGES),
        "OCRSERVE_MAX_QUEUED_INTERACTIVE_PAGES": str(MAX_QUEUED_INTERACTIVE_PAGES),
    }
    with running_server(tiny_checkpoint, server_logs, "admission-small-queues", env) as handle:
        yield handle


def assert_queue_full(error: openai.APIStatusError, setting: str) -> None:
    assert error.status_code == 503
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    body = error.response.json()["error"]
    assert body["type"] == "service_unavailable_error" and body["code"] == "queue_full"
    assert setting in body["message"]


def test_a_full_queue_refuses_new_jobs_with_503(small_queues: ServerHandle) -> None:
    server = small_queues
    with sdk(server, "x") as client, server.client() as http:
        big = background(client, server, pages=3)  # alone in its queue: admitted, though close to the bound
        small = background(client, server, pages=1)  # 3 + 1 = the bound
        with pytest.raises(openai.InternalServerError) as refused:
            background(client, server, pages=1)
        assert_queue_full(refused.value, f"OCRSERVE_MAX_QUEUED_PAGES={MAX_QUEUED_PAGES}")

        # the interactive queue has its own bound: a chat gets in while the background queue is full
        chat = {"model": server.model, "messages": file_message(pdf_bytes(3)), "max_tokens": 4, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=chat) as waiting:
            assert waiting.status_code == 200
            lines = waiting.iter_lines()  # kept: a dropped line iterator closes the connection, cancelling the job
            assert next(lines).startswith("data: ")  # the stream is open, its job queued
            with pytest.raises(openai.InternalServerError) as refused:
                client.chat.completions.create(model=server.model, messages=file_message(pdf_bytes(1)), max_tokens=4)
            assert_queue_full(refused.value, f"OCRSERVE_MAX_QUEUED_INTERACTIVE_PAGES={MAX_QUEUED_INTERACTIVE_PAGES}")

        assert client.responses.cancel(big).status == "cancelled"
        queued = background(client, server, pages=1)  # the cancelled job's pages left the queue
        cancel_queued(client, [small, queued])


@pytest.fixture(scope="module")
def embedded(tiny_checkpoint: Path, server_logs: Path) -> Iterator[ServerHandle]:
    env = {"OCRSERVE_RATE_LIMIT_RPM": "3", "OCRSERVE_MAX_CONCURRENT_JOBS": "1"}
    with running_server(tiny_checkpoint, server_logs, "admission-embedded", env) as handle:
        yield handle


def test_embedded_mode_limits_requests_in_memory(embedded: ServerHandle) -> None:
    with sdk(embedded, "x") as client:
        for _ in range(3):  # one slot, freed as each job completes
            reply = client.completions.create(model=embedded.model, prompt="Hi", max_tokens=1)
            assert reply.choices[0].finish_reason in ("stop", "length")
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=embedded.model, messages=[{"role": "user", "content": "Hi"}])
    assert_too_many(refused.value, "OCRSERVE_RATE_LIMIT_RPM=3")


def test_requests_refused_while_the_model_cannot_load_do_not_use_up_the_rate(
    tiny_checkpoint: Path, server_logs: Path, tmp_path: Path
) -> None:
    broken = Path(shutil.copytree(tiny_checkpoint, tmp_path / "broken"))
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    port = free_port()
    process = spawn("serve", broken, port, server_logs / "admission-broken.log", {"OCRSERVE_RATE_LIMIT_RPM": "2"})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + STARTUP_DEADLINE_S
            while True:
                try:
                    if http.get("/health").json().get("status") == "failed":
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                assert time.monotonic() < deadline, "the broken model never failed to load"
                time.sleep(0.25)
            body = {"model": SERVED_NAME, "prompt": "Hi", "max_tokens": 1}
            codes = [http.post("/v1/completions", json=body).status_code for _ in range(4)]
    finally:
        stop_process(process)
    assert codes == [503] * 4, "503s while the model is unavailable are not counted against the rate of 2"

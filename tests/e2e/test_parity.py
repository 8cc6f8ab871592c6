"""vLLM/OpenAI parity of a real server: GET /, /health (plain and verbose), the tasks a generative model lacks, the
model card; and the request size limits, refused before anything is queued."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pymupdf
import pytest
import redis

from ocr_engine.documents import DocumentLimits, document_page_sizes, load_document
from ocr_engine.image_tokens import ImageGeometry, page_image_tokens
from ocr_engine.modes import OCR2
from tests.fixtures import (
    STARTUP_DEADLINE_S,
    ServerHandle,
    data_url,
    file_message,
    free_port,
    image_prompt_tokens,
    page_image,
    png_bytes,
    running_redis,
    running_server,
    spawn,
    stop_process,
)
from workers.celery_app import BACKGROUND_QUEUE, INTERACTIVE_QUEUE

UNSUPPORTED = {"/v1/embeddings": "Embeddings", "/pooling": "Pooling", "/classify": "Classification"}
PERMISSION_FIELDS = {
    "id",
    "object",
    "created",
    "allow_create_engine",
    "allow_sampling",
    "allow_logprobs",
    "allow_search_indices",
    "allow_view",
    "allow_fine_tuning",
    "organization",
    "group",
    "is_blocking",
}


@pytest.fixture(scope="module")
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def backend_of(request: pytest.FixtureRequest) -> str:
    """`embedded` or `celery`: the parameter the session `server` fixture runs with."""
    return request.node.callspec.params["server"]


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    return error["message"]


# ---------------------------------------------------------------- GET /, /health


def test_root_says_what_the_server_is(http: httpx.Client, server: ServerHandle, request: pytest.FixtureRequest) -> None:
    reply = http.get("/")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    info = reply.json()
    assert info == {
        "name": "ocrserve",
        "version": http.get("/version").json()["version"],
        "model": server.model,
        "backend": backend_of(request),
        "docs_url": "/docs",
        "openapi_url": "/openapi.json",
    }
    assert http.get(info["docs_url"]).status_code == 200
    assert "/health" in http.get(info["openapi_url"]).json()["paths"]


def test_health_is_json_for_probes(http: httpx.Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    reply = http.get("/health")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    health = reply.json()
    assert set(health) == {"status", "message", "model_ready", "version", "timestamp"}
    assert health["status"] == "ready" and health["model_ready"] is True
    assert health["version"] == http.get("/version").json()["version"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", health["timestamp"])
    stamp = datetime.fromisoformat(health["timestamp"])
    assert stamp.utcoffset() == timedelta(0) and before <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
    assert "checks" not in http.get("/health", params={"verbose": "0"}).json()


@pytest.mark.parametrize("flag", ["1", "true"])
def test_verbose_health_adds_the_redis_and_worker_checks(
    http: httpx.Client, request: pytest.FixtureRequest, flag: str
) -> None:
    reply = http.get("/health", params={"verbose": flag})
    assert reply.status_code == 200
    health = reply.json()
    assert health["status"] == "ready" and health["model_ready"] is True
    checks = health["checks"]
    workers = checks["workers"]
    assert workers["status"] == "ok" and workers["total"] >= 1 and workers["states"]["ready"] >= 1
    assert sum(workers["states"].values()) == workers["total"]
    assert "ready" in workers["message"]
    if backend_of(request) == "embedded":
        assert set(checks) == {"workers"}  # no Redis in embedded mode
    else:
        assert checks["redis"]["status"] == "ok" and checks["redis"]["latency_ms"] >= 0


def test_verbose_health_of_an_api_without_redis_says_what_fails(tiny_checkpoint: Path, server_logs: Path) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    process = spawn(
        "serve", tiny_checkpoint, port, server_logs / "parity-no-redis.log", {"OCRSERVE_REDIS_URL": dead_redis}
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            def failed_health() -> dict | None:
                try:
                    reply = http.get("/health", params={"verbose": "1"})
                except httpx.TransportError:
                    return None  # not listening yet
                return reply.json() if reply.status_code == 503 and reply.json()["status"] == "failed" else None

            deadline = time.monotonic() + STARTUP_DEADLINE_S
            while (health := failed_health()) is None:
                assert time.monotonic() < deadline, "the API never reported Redis as unreachable"
                time.sleep(0.25)
    finally:
        stop_process(process)
    assert health["model_ready"] is False
    redis_check, workers = health["checks"]["redis"], health["checks"]["workers"]
    assert redis_check["status"] == "error" and "OCRSERVE_REDIS_URL" in redis_check["message"]
    assert "latency_ms" not in redis_check
    assert workers["status"] == "error" and "Redis" in workers["message"]


# ---------------------------------------------------------------- tasks of embedding and pooling models


@pytest.mark.parametrize("path", UNSUPPORTED)
@pytest.mark.parametrize(
    "body",
    [b'{"model": "tiny-ocr2", "input": "Hello"}', b"{not json", b"", b'{"input": ["a", "b"], "task": "embed"}'],
    ids=["valid", "invalid-json", "empty", "no-model"],
)
def test_tasks_of_pooling_models_are_a_clear_400(
    http: httpx.Client, server: ServerHandle, path: str, body: bytes
) -> None:
    reply = http.post(path, content=body, headers={"content-type": "application/json"})
    message = assert_error(reply, 400, "unsupported_task")
    assert f"`{server.model}` does not support the {UNSUPPORTED[path]} API" in message
    assert "generative" in message and "/v1/chat/completions" in message


def test_embeddings_through_the_openai_sdk_raise_bad_request(server: ServerHandle) -> None:
    requests: list[httpx.Request] = []
    client = httpx.Client(event_hooks={"request": [requests.append]}, timeout=30.0)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=3, http_client=client)
    with sdk, pytest.raises(openai.BadRequestError) as raised:
        sdk.embeddings.create(model=server.model, input="Invoice 2026-11-23")
    assert raised.value.status_code == 400 and raised.value.code == "unsupported_task"
    assert "Embeddings API" in raised.value.message
    assert len(requests) == 1  # a 400 is not retried


def test_embeddings_sit_behind_the_api_key(strict_server: ServerHandle) -> None:
    with strict_server.client() as http:
        assert http.post("/v1/embeddings", json={"input": "x"}).status_code == 401
        assert http.post("/pooling", json={"input": "x"}).status_code == 400  # root level, like /tokenize
    with strict_server.client(Authorization="Bearer k2") as http:
        assert_error(http.post("/v1/embeddings", json={"input": "x"}), 400, "unsupported_task")


# ---------------------------------------------------------------- the model card


def test_model_card_has_vllm_fields(http: httpx.Client, server: ServerHandle, tiny_checkpoint: Path) -> None:
    card = http.get(f"/v1/models/{server.model}").json()
    assert card["root"] == str(tiny_checkpoint) and card["parent"] is None
    assert card["max_model_len"] == 4096 and card["owned_by"] == "ocrserve"
    (permission,) = card["permission"]
    assert set(permission) == PERMISSION_FIELDS
    assert re.fullmatch(r"modelperm-[0-9a-f]{32}", permission["id"])
    assert permission["object"] == "model_permission" and permission["organization"] == "*"
    assert permission["created"] == card["created"] and permission["group"] is None
    assert permission["allow_sampling"] is True and permission["allow_fine_tuning"] is False
    assert http.get("/v1/models").json()["data"] == [card]  # the same permission id in every listing

    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk:
        model = sdk.models.retrieve(server.model)
    assert model.model_extra["permission"][0]["id"] == permission["id"]
    assert model.model_extra["root"] == str(tiny_checkpoint)


# ---------------------------------------------------------------- size limits, before queueing

BIG_PAGE = png_bytes(page_image("A tall scan", size=(1200, 1600)))
PAGE_TOKENS = page_image_tokens(OCR2, "gundam", 1200, 1600, ImageGeometry())  # 257 + 144 x 6 tiles
IMAGE_TOKEN_LIMIT = 2 * PAGE_TOKENS
REQUEST_BYTE_LIMIT = 3_000_000


def letter_pdf() -> bytes:
    document = pymupdf.open()
    document.new_page(width=612, height=792).insert_text((72, 72), "Letter page")
    return document.tobytes()


def test_counted_image_tokens_are_the_prompt_tokens_the_engine_uses(http: httpx.Client, server: ServerHandle) -> None:
    """Differences cancel the text tokens: what the limit counts per page is what usage.prompt_tokens reports."""
    pdf, limits, counted = letter_pdf(), DocumentLimits(), {}
    for dpi in (50, 72):
        ((width, height),) = document_page_sizes(load_document(pdf, limits=limits), dpi, limits)
        counted[dpi] = page_image_tokens(OCR2, "gundam", width, height, ImageGeometry())

    def pdf_prompt_tokens(dpi: int) -> int:
        body = {"model": server.model, "messages": file_message(pdf), "max_tokens": 1, "ocr": {"dpi": dpi}}
        reply = http.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        return reply.json()["usage"]["prompt_tokens"]

    assert counted[72] > counted[50]  # 792 px is over one 768 px tile, 550 px is not
    assert pdf_prompt_tokens(72) - pdf_prompt_tokens(50) == counted[72] - counted[50]
    tiled = image_prompt_tokens(http, server.model, BIG_PAGE)
    global_only = image_prompt_tokens(http, server.model, BIG_PAGE, mode="base")
    assert tiled - global_only == PAGE_TOKENS - page_image_tokens(OCR2, "base", 1200, 1600, ImageGeometry())


@pytest.fixture(scope="module")
def limited(
    tiny_checkpoint: Path, server_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerHandle, redis.Redis]]:
    """An API in Celery mode with small limits and no worker: whatever it accepts stays in the queue, in sight."""
    with running_redis(tmp_path_factory.mktemp("redis-limits")) as url:
        env = {
            "OCRSERVE_REDIS_URL": url,
            "OCRSERVE_MAX_IMAGE_TOKENS": str(IMAGE_TOKEN_LIMIT),
            "OCRSERVE_MAX_REQUEST_BYTES": str(REQUEST_BYTE_LIMIT),
        }
        with running_server(tiny_checkpoint, server_logs, "limits-api", env) as handle:
            client = redis.Redis.from_url(url)
            try:
                yield handle, client
            finally:
                client.close()


def queued(client: redis.Redis) -> int:
    return client.llen(INTERACTIVE_QUEUE) + client.llen(BACKGROUND_QUEUE)


def pages_input(count: int) -> list[dict]:
    parts = [{"type": "input_image", "image_url": data_url(BIG_PAGE, "image/png")}] * count
    return [{"role": "user", "content": parts}]


def background(http: httpx.Client, model: str, count: int, **ocr: str) -> httpx.Response:
    body = {"model": model, "input": pages_input(count), "background": True, "ocr": ocr}
    return http.post("/v1/responses", json=body)


def test_image_tokens_up_to_the_limit_are_queued(limited: tuple[ServerHandle, redis.Redis]) -> None:
    handle, client = limited
    before = queued(client)
    with handle.client() as http:
        at_limit = background(http, handle.model, 2)
        assert at_limit.status_code == 200 and at_limit.json()["status"] == "queued", at_limit.text
        few_tokens = background(http, handle.model, 3, mode="base")  # 3 x 257 tokens without tiles
        assert few_tokens.status_code == 200, few_tokens.text
    assert queued(client) == before + 2


def test_image_tokens_over_the_limit_are_refused_before_queueing(limited: tuple[ServerHandle, redis.Redis]) -> None:
    handle, client = limited
    before = queued(client)
    part = {"type": "image_url", "image_url": {"url": data_url(BIG_PAGE, "image/png")}}
    chat = {"model": handle.model, "messages": [{"role": "user", "content": [part] * 3}]}
    with handle.client() as http:
        for send in (lambda: background(http, handle.model, 3), lambda: http.post("/v1/chat/completions", json=chat)):
            message = assert_error(send(), 400, "limit_exceeded")
            assert f"OCRSERVE_MAX_IMAGE_TOKENS={IMAGE_TOKEN_LIMIT}" in message
            assert f"{3 * PAGE_TOKENS:,} image tokens" in message and "3 pages" in message
            assert queued(client) == before


def test_pdf_pages_over_max_pixels_are_refused_before_queueing(limited: tuple[ServerHandle, redis.Redis]) -> None:
    handle, client = limited
    document = pymupdf.open()
    document.new_page(width=2000, height=2000)  # 8334 x 8334 pixels at 300 dpi
    pdf = document.tobytes()
    part = {"type": "input_file", "filename": "poster.pdf", "file_data": data_url(pdf, "application/pdf")}
    before = queued(client)
    with handle.client() as http:
        body = {"model": handle.model, "background": True, "ocr": {"dpi": 300}}
        reply = http.post("/v1/responses", json={**body, "input": [{"role": "user", "content": [part]}]})
    message = assert_error(reply, 400, "limit_exceeded")
    assert "PDF page 1 at 300 dpi" in message and "OCRSERVE_MAX_PIXELS" in message and "40,000,000" in message
    assert queued(client) == before


def test_a_body_over_max_request_bytes_is_a_413_naming_the_limit(limited: tuple[ServerHandle, redis.Redis]) -> None:
    handle, client = limited
    before = queued(client)
    with handle.client() as http:
        reply = background(http, handle.model, 2 * REQUEST_BYTE_LIMIT // len(BIG_PAGE) + 1)
    message = assert_error(reply, 413, "limit_exceeded")
    assert f"OCRSERVE_MAX_REQUEST_BYTES={REQUEST_BYTE_LIMIT}" in message
    assert queued(client) == before


def test_without_a_ready_worker_jobs_queue_but_no_model_is_ready(limited: tuple[ServerHandle, redis.Redis]) -> None:
    handle, _ = limited
    with handle.client() as http:
        reply = http.get("/health", params={"verbose": "1"})
    assert reply.status_code == 200, "jobs can still be queued"
    health = reply.json()
    assert health["status"] == "ready" and health["model_ready"] is False
    assert health["checks"]["workers"]["total"] == 0

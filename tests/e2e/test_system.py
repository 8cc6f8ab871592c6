"""Operational endpoints of a real server: models, health, ping, version, load, metrics, docs, tokenize."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures import ServerHandle, data_url, image_message


@pytest.fixture(scope="module")
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _assert_envelope(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_tokenize_detokenize_round_trip(http: httpx.Client, server: ServerHandle) -> None:
    with_bos = http.post("/tokenize", json={"prompt": "Hello world"})
    assert with_bos.status_code == 200
    body = with_bos.json()
    assert body["count"] == len(body["tokens"]) > 1
    assert body["max_model_len"] == 4096  # the tiny checkpoint's max_position_embeddings
    assert body["tokens"][0] == 0  # the tokenizer adds BOS (id 0)

    plain = http.post("/tokenize", json={"prompt": "Hello world", "add_special_tokens": False}).json()
    assert plain["tokens"] == body["tokens"][1:]
    assert plain["count"] == body["count"] - 1

    back = http.post("/detokenize", json={"tokens": plain["tokens"]})
    assert back.status_code == 200
    assert back.json() == {"prompt": "Hello world"}

    named = http.post("/tokenize", json={"prompt": "Hello world", "model": server.model})
    assert named.json()["tokens"] == body["tokens"]


def test_tokenize_messages(http: httpx.Client) -> None:
    body = http.post("/tokenize", json={"messages": [{"role": "user", "content": "Hello world"}]}).json()
    assert body["count"] == len(body["tokens"]) > 0


def test_tokenize_errors(http: httpx.Client) -> None:
    error = _assert_envelope(http.post("/tokenize", json={}), 400)
    assert "prompt" in error["message"]
    error = _assert_envelope(http.post("/tokenize", json={"prompt": "x", "model": "other-model"}), 404)
    assert error["code"] == "model_not_found"
    error = _assert_envelope(http.post("/detokenize", json={"tokens": [10**7]}), 400)
    assert "out of range" in error["message"]
    assert error["param"] == "tokens"


def test_models(http: httpx.Client, server: ServerHandle) -> None:
    listing = http.get("/v1/models")
    assert listing.status_code == 200
    assert listing.headers["content-type"].startswith("application/json")
    body = listing.json()
    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == [server.model]
    card = body["data"][0]
    assert card["object"] == "model"
    assert card["max_model_len"] == 4096

    one = http.get(f"/v1/models/{server.model}")
    assert one.status_code == 200
    assert one.json() == card

    error = _assert_envelope(http.get("/v1/models/some-other-model"), 404)
    assert error["code"] == "model_not_found"
    assert "some-other-model" in error["message"]


def test_models_via_the_openai_sdk(server: ServerHandle) -> None:
    import openai

    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=30.0) as sdk:
        assert [model.id for model in sdk.models.list()] == [server.model]
        assert sdk.models.retrieve(server.model).id == server.model
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("some-other-model")


def test_health_ping_version_load(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ready"
    assert http.get("/ping").json() == {"status": "ok"}
    assert http.post("/ping").status_code == 200
    version = http.get("/version")
    assert version.status_code == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version.json()["version"])
    load = http.get("/load").json()
    assert isinstance(load["server_load"], int)
    assert load["server_load"] >= 0


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"no sample {name} in:\n{text}"
    return float(match.group(1))


def test_metrics_count_pages_and_tokens(http: httpx.Client, server: ServerHandle, png: bytes) -> None:
    before = http.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert "ocrserve_requests" in before.text and "ocrserve_pages" in before.text
    pages, prompt = _metric(before.text, "ocrserve_pages_total"), _metric(before.text, "ocrserve_prompt_tokens_total")

    reply = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": image_message(data_url(png, "image/png")), "max_tokens": 4},
    )
    assert reply.status_code == 200
    after = http.get("/metrics").text
    assert _metric(after, "ocrserve_pages_total") == pages + 1
    assert _metric(after, "ocrserve_prompt_tokens_total") == prompt + reply.json()["usage"]["prompt_tokens"]


def test_metrics_content_type_is_well_formed(http: httpx.Client) -> None:
    content_type = http.get("/metrics").headers["content-type"]
    assert content_type.count("charset") == 1


def test_metrics_count_requests(http: httpx.Client, server: ServerHandle) -> None:
    reply = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    )
    assert reply.status_code == 200
    assert re.search(r"^ocrserve_requests_total\{", http.get("/metrics").text, re.MULTILINE)


def test_openapi_and_docs(http: httpx.Client) -> None:
    schema = http.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize", "/health"):
        assert path in paths
    docs = http.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "<html" in docs.text.lower()
    assert "cdn" not in docs.text.lower(), "the docs page must work offline"
    script = http.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text


def test_unknown_route_and_method_use_the_envelope(http: httpx.Client) -> None:
    _assert_envelope(http.get("/v1/no-such-endpoint"), 404)
    _assert_envelope(http.delete("/v1/models"), 405)

"""API keys: /v1/* needs `Authorization: Bearer <key>`; operational endpoints stay open."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.fixtures import ServerHandle


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "API key" in error["message"]
    assert error["code"] == "invalid_api_key"


def _chat_body(server: ServerHandle) -> dict:
    return {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer k1x"},
        {"Authorization": "k1"},
        {"Authorization": "Basic k1"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "prefix-of-a-key", "no-scheme", "basic", "empty"],
)
def test_bad_or_missing_key_is_401(strict_server: ServerHandle, headers: dict[str, str]) -> None:
    with strict_server.client(**headers) as http:
        _assert_401(http.get("/v1/models"))
        _assert_401(http.post("/v1/chat/completions", json=_chat_body(strict_server)))
        _assert_401(http.post("/v1/completions", json={"model": strict_server.model, "prompt": "Hi"}))


@pytest.mark.parametrize("key", ["k1", "k2"])
def test_every_configured_key_works(strict_server: ServerHandle, key: str) -> None:
    with strict_server.client(Authorization=f"Bearer {key}") as http:
        assert http.get("/v1/models").status_code == 200
        reply = http.post("/v1/chat/completions", json=_chat_body(strict_server))
        assert reply.status_code == 200, reply.text
        assert isinstance(reply.json()["choices"][0]["message"]["content"], str)


def test_operational_endpoints_need_no_key(strict_server: ServerHandle) -> None:
    with strict_server.client() as http:
        assert http.get("/health").status_code == 200
        assert http.get("/ping").status_code == 200
        assert http.get("/version").status_code == 200


def test_openai_sdk_authentication_error(strict_server: ServerHandle) -> None:
    base = f"{strict_server.url}/v1"
    with openai.OpenAI(base_url=base, api_key="nope", max_retries=2, timeout=30.0) as sdk:
        with pytest.raises(openai.AuthenticationError) as raised:
            sdk.chat.completions.create(model=strict_server.model, messages=[{"role": "user", "content": "Hi"}])
        assert raised.value.status_code == 401
    with openai.OpenAI(base_url=base, api_key="k2", max_retries=0, timeout=60.0) as sdk:
        reply = sdk.chat.completions.create(
            model=strict_server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        assert isinstance(reply.choices[0].message.content, str)

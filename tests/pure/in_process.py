"""The real app in process, over a scripted dispatcher (tests/pure/scripted.py), with Litestar's test client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx
from litestar.testing import TestClient

from app.asgi import create_app
from ocr_engine.model_info import ModelInfo
from ocrserve.settings import Settings
from tests.pure.scripted import ScriptedDispatcher
from workers.dispatch import Dispatcher

MODEL = "tiny"


@contextmanager
def serving(model: ModelInfo, dispatcher: ScriptedDispatcher, **settings: Any) -> Iterator[TestClient]:
    """A client of the app serving `model` (as `tiny`) over `dispatcher`, with `settings` over the defaults."""
    app = create_app(
        Settings(model=model.source, served_model_name=MODEL, **settings),
        dispatcher=cast(Dispatcher, dispatcher),
        model=model,
    )
    with TestClient(app) as client:
        yield client


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The OpenAI envelope of an error reply: its status, JSON content type and exactly the four keys."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error

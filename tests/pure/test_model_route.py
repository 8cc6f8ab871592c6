"""`GET /v1/models/{id}` through the openai SDK, in process: ids with slashes (hub ids, absolute paths) work."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import openai
import pytest
from litestar.testing import TestClient

from app.asgi import create_app
from ocrserve.settings import Settings
from tests.pure.test_openapi import IdleDispatcher
from workers.dispatch import Dispatcher


@pytest.mark.parametrize("served_name", ["/models/deepseek-ocr-2", "deepseek-community/DeepSeek-OCR-2", "ocr"])
def test_the_sdk_retrieves_the_model_by_any_of_its_names(model_files: Path, served_name: str) -> None:
    settings = Settings(model=str(model_files), served_model_name=served_name)
    app = create_app(settings, dispatcher=cast(Dispatcher, IdleDispatcher()))
    with TestClient(app) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="none", http_client=http, max_retries=0)
        assert client.models.retrieve(served_name).id == served_name
        assert client.models.retrieve(str(model_files)).id == served_name  # the checkpoint's absolute path
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(served_name + "-other")

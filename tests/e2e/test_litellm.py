"""LiteLLM's `openai/` provider against a real server (offline: see the env set in tests/conftest.py)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported: no network

import litellm
import pytest

from tests.fixtures import PAGE_SPLIT, ServerHandle, data_url, file_message, image_message, pdf_bytes

litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydantic")


def complete(server: ServerHandle, messages: list[dict], **options: object) -> object:
    """litellm.completion against the server through the `openai/` provider, without retries."""
    return litellm.completion(
        model=f"openai/{server.model}",
        api_base=f"{server.url}/v1",
        api_key="x",
        messages=messages,
        timeout=120,
        num_retries=0,
        **options,
    )


def test_litellm_completion_with_an_image(server: ServerHandle, png: bytes) -> None:
    response = complete(server, image_message(data_url(png, "image/png"), "Free OCR."), max_tokens=8)
    assert isinstance(response, litellm.ModelResponse)
    assert isinstance(response.choices[0].message.content, str)
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens > 256
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_litellm_pdf_with_extra_body_and_stream(server: ServerHandle) -> None:
    chunks = list(
        complete(
            server, file_message(pdf_bytes(2)), max_tokens=6, stream=True, extra_body={"ocr": {"output_format": "raw"}}
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.count(PAGE_SPLIT) == 1


def test_litellm_maps_a_400(server: ServerHandle) -> None:
    with pytest.raises(litellm.BadRequestError):
        complete(server, file_message(pdf_bytes(7)), max_tokens=4)

"""The real `openai` SDK against a real `ocrserve serve`: images, PDFs, URLs, streaming, text, stop, seed.

The tiny model is random, so its text is gibberish: these tests check structure and invariants, not words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fixtures import (
    PAGE_SPLIT,
    ServerHandle,
    data_url,
    file_message,
    image_message,
    jpeg_bytes,
    pdf_bytes,
)

GLOBAL_VIEW_TOKENS = 257  # a 1024 px global view alone is 256 image tokens + 1 separator


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120.0) as sdk:
        yield sdk


def _check_usage(usage: openai.types.CompletionUsage) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens >= 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_with_an_image_data_url(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    reply = client.chat.completions.create(
        model=server.model,
        messages=image_message(data_url(png, "image/png"), "Free OCR."),
        max_tokens=12,
    )
    assert reply.object == "chat.completion"
    assert reply.model == server.model
    assert reply.id
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    _check_usage(reply.usage)
    assert reply.usage.prompt_tokens > 256  # the image tokens are counted
    assert reply.usage.completion_tokens <= 12
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_chat_with_a_jpeg_and_no_text_uses_the_default_preset(client: openai.OpenAI, server: ServerHandle) -> None:
    reply = client.chat.completions.create(
        model=server.model,
        messages=image_message(data_url(jpeg_bytes(), "image/jpeg")),
        max_tokens=8,
    )
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage.prompt_tokens > 256


def test_multi_page_pdf_file_part(client: openai.OpenAI, server: ServerHandle) -> None:
    def ocr(data: bytes, **ocr: object):
        return client.chat.completions.create(
            model=server.model,
            messages=file_message(data),
            max_tokens=8,
            temperature=0,
            extra_body={"ocr": {"output_format": "raw", **ocr}},
        )

    one = ocr(pdf_bytes(1))
    three = ocr(pdf_bytes(3))
    assert one.usage.prompt_tokens >= GLOBAL_VIEW_TOKENS
    assert three.usage.prompt_tokens >= 3 * GLOBAL_VIEW_TOKENS
    assert three.usage.prompt_tokens == 3 * one.usage.prompt_tokens  # equal pages, equal prompts
    assert three.usage.total_tokens == three.usage.prompt_tokens + three.usage.completion_tokens
    assert three.choices[0].message.content.count(PAGE_SPLIT) == 2

    selected = ocr(pdf_bytes(3), pages="2-3")
    assert selected.choices[0].message.content.count(PAGE_SPLIT) == 1
    assert selected.usage.prompt_tokens == 2 * one.usage.prompt_tokens


def test_multi_page_pdf_markdown_keeps_the_separators(client: openai.OpenAI, server: ServerHandle) -> None:
    reply = client.chat.completions.create(model=server.model, messages=file_message(pdf_bytes(3)), max_tokens=8)
    assert reply.choices[0].message.content.count(PAGE_SPLIT) == 2


def test_two_documents_in_one_message_are_joined(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    messages = image_message(data_url(png, "image/png"))
    messages[0]["content"].append(file_message(pdf_bytes(2))[0]["content"][0])
    reply = client.chat.completions.create(
        model=server.model, messages=messages, max_tokens=8, extra_body={"ocr": {"output_format": "raw"}}
    )
    assert reply.choices[0].message.content.count(PAGE_SPLIT) == 2
    assert reply.usage.prompt_tokens >= 3 * GLOBAL_VIEW_TOKENS


@pytest.mark.parametrize("path", ["/page.png", "/redirect"])
def test_http_image_url(client: openai.OpenAI, server: ServerHandle, doc_server, path: str) -> None:
    before = len(doc_server.hits)
    reply = client.chat.completions.create(
        model=server.model, messages=image_message(f"{doc_server.url}{path}"), max_tokens=8
    )
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage.prompt_tokens > 256
    hits = doc_server.hits[before:]
    assert hits[-1] == "/page.png"
    assert hits[0] == path


def test_streaming_matches_the_non_streamed_reply(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    request = {
        "model": server.model,
        "messages": image_message(data_url(png, "image/png"), "Free OCR."),
        "max_tokens": 16,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**request)
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))

    assert len(chunks) >= 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == [whole.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.model_dump() == whole.usage.model_dump()
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streaming_without_include_usage_sends_no_usage(
    client: openai.OpenAI, server: ServerHandle, png: bytes
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=server.model, messages=image_message(data_url(png, "image/png")), max_tokens=6, stream=True
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def _stream_body(server: ServerHandle, endpoint: str, png: bytes) -> dict:
    if endpoint == "/v1/completions":
        return {"model": server.model, "prompt": "Hello", "max_tokens": 6, "stream": True}
    return {
        "model": server.model,
        "messages": image_message(data_url(png, "image/png")),
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/completions"])
def test_raw_sse_frames(server: ServerHandle, png: bytes, endpoint: str) -> None:
    with server.client() as http, http.stream("POST", endpoint, json=_stream_body(server, endpoint, png)) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    frames = [frame for frame in raw.split("\n\n") if frame.strip()]
    assert len(frames) >= 3
    assert all(frame.startswith("data: ") for frame in frames)
    assert frames[-1] == "data: [DONE]"
    assert raw.endswith("data: [DONE]\n\n")
    assert raw.count("[DONE]") == 1
    for frame in frames[:-1]:
        assert json.loads(frame.removeprefix("data: "))["id"]


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/completions"])
def test_sse_content_type(server: ServerHandle, png: bytes, endpoint: str) -> None:
    with server.client() as http, http.stream("POST", endpoint, json=_stream_body(server, endpoint, png)) as response:
        assert response.status_code == 200
        response.read()
        assert response.headers["content-type"].startswith("text/event-stream")


def test_text_only_chat(client: openai.OpenAI, server: ServerHandle) -> None:
    reply = client.chat.completions.create(
        model=server.model,
        messages=[
            {"role": "system", "content": "You read invoices."},
            {"role": "user", "content": "What is the total?"},
        ],
        max_tokens=10,
    )
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.choices[0].finish_reason in ("stop", "length")
    _check_usage(reply.usage)
    assert reply.usage.prompt_tokens < 256  # no image tokens


PROMPT = "Invoice total: 1,234.56 EUR. The quick brown fox"


def test_completions(client: openai.OpenAI, server: ServerHandle) -> None:
    plain = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=16, temperature=0)
    assert plain.object == "text_completion"
    assert isinstance(plain.choices[0].text, str)
    assert plain.choices[0].finish_reason in ("stop", "length")
    _check_usage(plain.usage)

    echoed = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=16, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith(PROMPT)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text

    chunks = list(
        client.completions.create(model=server.model, prompt=PROMPT, max_tokens=16, temperature=0, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == [plain.choices[0].finish_reason]


def _stop_candidate(text: str) -> tuple[str, int]:
    """A 3-character substring from the middle of `text` whose first occurrence is where it was taken."""
    for start in range(max(len(text) // 2, 1), len(text) - 3):
        candidate = text[start : start + 3]
        if "\ufffd" not in candidate and candidate.strip() and text.find(candidate) == start:
            return candidate, start
    pytest.fail(f"no usable stop sequence in {text!r}")


def test_stop_sequence_cuts_the_text_right_before_it(client: openai.OpenAI, server: ServerHandle) -> None:
    full = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=24, temperature=0)
    text = full.choices[0].text
    assert len(text) >= 8, f"greedy output too short to pick a stop sequence from: {text!r}"
    stop, position = _stop_candidate(text)

    stopped = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop])
    assert stopped.choices[0].text == text[:position]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens < full.usage.completion_tokens

    streamed = client.completions.create(
        model=server.model, prompt=PROMPT, max_tokens=24, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == text[:position]


def test_stop_sequence_in_chat(client: openai.OpenAI, server: ServerHandle) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    full = client.chat.completions.create(model=server.model, messages=messages, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    stop, position = _stop_candidate(text)
    stopped = client.chat.completions.create(
        model=server.model, messages=messages, max_tokens=24, temperature=0, stop=stop
    )
    assert stopped.choices[0].message.content == text[:position]
    assert stopped.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model=server.model,
            messages=image_message(data_url(png, "image/png")),
            max_tokens=16,
            temperature=1.0,
            seed=seed,
            extra_body={"ocr": {"output_format": "raw"}},
        )
        return reply.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    # different seeds sample different text from the (nearly uniform) random model: sampling really happens
    assert sample(99) != first or sample(7) != first


def test_completions_seed(client: openai.OpenAI, server: ServerHandle) -> None:
    def sample(seed: int) -> str:
        reply = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=16, temperature=1.0, seed=seed)
        return reply.choices[0].text

    assert sample(5) == sample(5)


def test_max_completion_tokens_is_honoured(client: openai.OpenAI, server: ServerHandle) -> None:
    reply = client.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=5
    )
    assert reply.usage.completion_tokens <= 5


def test_sdk_sees_no_retries_on_success(server: ServerHandle, png: bytes) -> None:
    """The SDK talks to the server exactly once per call (no 409/5xx answers that would make it retry)."""
    requests: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [requests.append]}, timeout=120.0)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=2, http_client=http) as sdk:
        sdk.chat.completions.create(
            model=server.model, messages=image_message(data_url(png, "image/png")), max_tokens=4
        )
    assert len(requests) == 1

"""`ocr.output_format: "layout"` through the real `openai` SDK: chat (whole and streamed) and responses.

The tiny model's text is random, so these check the structure: one JSON object per page, in page order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.fixtures import ServerHandle, data_url, file_message, pdf_bytes

LAYOUT = {"ocr": {"output_format": "layout", "dpi": 72}}
PAGE_PIXELS = (200, 260)  # pdf_bytes' pages are 200 x 260 points: pixels at 72 dpi


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120.0) as sdk:
        yield sdk


def _check_pages(text: str, count: int) -> None:
    lines = text.split("\n")  # not splitlines(): JSON leaves U+2028 and the like unescaped
    assert lines.pop() == ""
    pages = [json.loads(line) for line in lines]
    assert [page["page"] for page in pages] == list(range(1, count + 1))
    assert all((page["width"], page["height"]) == PAGE_PIXELS for page in pages)
    assert all(isinstance(page["blocks"], list) and isinstance(page["text"], str) for page in pages)
    for page in pages:  # a confidence for the page and one for every block (null only where no text was written)
        scores = [page["confidence"], *(block["confidence"] for block in page["blocks"])]
        assert all(0 <= s["min"] <= s["mean"] <= 1 and s["tokens"] > 0 for s in scores if s is not None)
    assert any(page["confidence"] is not None for page in pages)


def test_chat_layout_is_one_json_line_per_page(client: openai.OpenAI, server: ServerHandle) -> None:
    reply = client.chat.completions.create(
        model=server.model, messages=file_message(pdf_bytes(2)), max_tokens=6, extra_body=LAYOUT
    )
    _check_pages(reply.choices[0].message.content, 2)


def test_streamed_layout_sends_each_page_line_whole(client: openai.OpenAI, server: ServerHandle) -> None:
    stream = client.chat.completions.create(
        model=server.model, messages=file_message(pdf_bytes(2)), max_tokens=6, stream=True, extra_body=LAYOUT
    )
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) == 2
    assert all(delta.count("\n") == 1 and delta.endswith("}\n") for delta in deltas)
    _check_pages("".join(deltas), 2)


def test_responses_layout(client: openai.OpenAI, server: ServerHandle) -> None:
    part = {"type": "input_file", "filename": "doc.pdf", "file_data": data_url(pdf_bytes(2), "application/pdf")}
    response = client.responses.create(
        model=server.model, input=[{"role": "user", "content": [part]}], max_output_tokens=6, extra_body=LAYOUT
    )
    _check_pages(response.output_text, 2)

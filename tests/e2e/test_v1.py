"""DeepSeek-OCR v1 end to end through the API: its resolution modes, their token counts, layout output."""

from __future__ import annotations

import json

import httpx

from tests.fixtures import ServerHandle, data_url, image_message, image_prompt_tokens, page_image, png_bytes

BIG_PAGE = png_bytes(page_image("A large scanned page", size=(1400, 1000)))


def chat(http: httpx.Client, server: ServerHandle, **ocr: str) -> httpx.Response:
    body = {"model": server.model, "messages": image_message(data_url(BIG_PAGE, "image/png")), "max_tokens": 2}
    return http.post("/v1/chat/completions", json={**body, "ocr": ocr})


def test_modes_set_the_image_token_count(v1_server: ServerHandle) -> None:
    with v1_server.client() as http:
        counts = {
            mode: image_prompt_tokens(http, v1_server.model, BIG_PAGE, mode=mode)
            for mode in ("tiny", "small", "base", "large")
        }
        gundam = image_prompt_tokens(http, v1_server.model, BIG_PAGE, mode="gundam")
    text_tokens = counts["base"] - 273  # base: 16x16 features + 16 row newlines + the view separator
    assert text_tokens > 0
    assert counts == {
        "tiny": 73 + text_tokens,
        "small": 111 + text_tokens,
        "base": 273 + text_tokens,
        "large": 421 + text_tokens,
    }
    assert gundam > counts["base"]  # the global view plus 640 px tiles


def test_unknown_mode_lists_the_v1_modes(v1_server: ServerHandle) -> None:
    with v1_server.client() as http:
        reply = chat(http, v1_server, mode="huge")
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert all(mode in message for mode in ("tiny", "small", "base", "large", "gundam"))


def test_layout_output(v1_server: ServerHandle) -> None:
    with v1_server.client() as http:
        reply = chat(http, v1_server, output_format="layout", mode="base")
    assert reply.status_code == 200
    lines = reply.json()["choices"][0]["message"]["content"].splitlines()
    page = json.loads(lines[0])
    assert len(lines) == 1 and page["page"] == 1 and (page["width"], page["height"]) == (1400, 1000)

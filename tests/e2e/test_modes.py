"""Per-request resolution modes through the API (both dispatchers): token counts follow the mode."""

from __future__ import annotations

from tests.fixtures import ServerHandle, data_url, image_message, image_prompt_tokens, page_image, png_bytes


def test_base_mode_drops_the_tiles_of_a_large_page(server: ServerHandle) -> None:
    big_page = png_bytes(page_image("A large page", size=(1200, 1600)))
    with server.client() as http:
        tiled = image_prompt_tokens(http, server.model, big_page)
        assert image_prompt_tokens(http, server.model, big_page, mode="gundam") == tiled
        global_only = image_prompt_tokens(http, server.model, big_page, mode="base")
    assert (tiled - global_only) % 144 == 0 and tiled - global_only >= 2 * 144  # 144 tokens per 768 px tile


def test_an_unknown_mode_lists_the_valid_ones(server: ServerHandle, png: bytes) -> None:
    body = {"model": server.model, "messages": image_message(data_url(png, "image/png")), "ocr": {"mode": "huge"}}
    with server.client() as http:
        reply = http.post("/v1/chat/completions", json=body)
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == "ocr.mode"
    assert "huge" in error["message"] and "gundam" in error["message"] and "base" in error["message"]

"""Every bad input gets the right status and a specific OpenAI error envelope, before anything is queued: documents,
URLs and prompts against the real server of each dispatcher (the shape of a request body is checked in process,
tests/pure/test_http_errors.py)."""

from __future__ import annotations

import concurrent.futures
import os
import random
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fixtures import (
    ServerHandle,
    data_url,
    encrypted_pdf_bytes,
    file_message,
    free_port,
    huge_blank_png,
    image_message,
    noise_png,
    pdf_bytes,
)


@pytest.fixture(scope="module")
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def chat(server: ServerHandle, **fields: object) -> dict:
    body: dict = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    body.update(fields)
    return body


def assert_error(response: httpx.Response, status: int, *needles: str, code: str | None = None) -> dict:
    """Status, JSON content type, the four envelope keys, a non-empty message containing every needle."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    for needle in needles:
        assert needle.lower() in error["message"].lower(), f"{needle!r} not in {error['message']!r}"
    if code is not None:
        assert error["code"] == code
    return error


def post_chat(http: httpx.Client, body: dict) -> httpx.Response:
    return http.post("/v1/chat/completions", json=body)


# ---------------------------------------------------------------- the request itself


@pytest.mark.parametrize("fields", [{"temperature": 1e-300}, {"temperature": 1.0, "top_p": 1e-9}, {"top_p": 1.0}])
def test_sampling_at_the_edges_works(http: httpx.Client, server: ServerHandle, fields: dict) -> None:
    reply = post_chat(http, chat(server, seed=3, **fields))
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["finish_reason"] in ("stop", "length")


def _finished_jobs(http: httpx.Client) -> float:
    lines = http.get("/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith("ocrserve_jobs_total{"))


def test_a_forty_megabyte_prompt_is_refused_before_it_is_queued(http: httpx.Client, server: ServerHandle) -> None:
    """Refused on its characters, in the API: no job is made of it, so the small request beside it is the only job
    that ends (the model thread never tokenizes 40 MB)."""
    huge = "word " * 8_000_000
    before = _finished_jobs(http)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        refused = pool.submit(post_chat, http, chat(server, messages=[{"role": "user", "content": huge}]))
        small = post_chat(http, chat(server))
        error = assert_error(refused.result(), 400, "characters", "4,096 tokens", code="limit_exceeded")
    assert error["param"] == "messages"
    assert small.status_code == 200, small.text
    assert _finished_jobs(http) == before + 1
    response = http.post("/tokenize", json={"model": server.model, "prompt": huge})
    assert_error(response, 400, "characters", code="limit_exceeded")


def test_a_prompt_over_the_model_length_in_tokens(http: httpx.Client, server: ServerHandle) -> None:
    """Under the character bound, over the length in tokens: counted in the API, refused with the count."""
    long = " ".join(f"w{i}" for i in range(3000))  # two or more tokens a word, far fewer characters than the bound
    count = http.post("/tokenize", json={"model": server.model, "prompt": long}).json()["count"]
    assert count >= 4096
    response = http.post("/v1/completions", json={"model": server.model, "prompt": long, "max_tokens": 1})
    error = assert_error(response, 400, f"{count:,} tokens", "max_model_len", code="limit_exceeded")
    assert error["param"] == "prompt"


# ---------------------------------------------------------------- documents


def image_chat(server: ServerHandle, url: str) -> dict:
    return chat(server, messages=image_message(url))


def test_bad_base64(http: httpx.Client, server: ServerHandle) -> None:
    error = assert_error(post_chat(http, image_chat(server, "data:image/png;base64,@@not*base64!!")), 400, "base64")
    assert error["param"] == "messages[0].content[0].image_url.url"


def test_random_bytes_are_not_a_document(http: httpx.Client, server: ServerHandle) -> None:
    noise = random.Random(3).randbytes(600)
    assert_error(post_chat(http, image_chat(server, data_url(noise, "image/png"))), 400, "unsupported")


def test_corrupt_png(http: httpx.Client, server: ServerHandle) -> None:
    corrupt = b"\x89PNG\r\n\x1a\n" + os.urandom(600)
    assert_error(post_chat(http, image_chat(server, data_url(corrupt, "image/png"))), 400, "decode")


def test_corrupt_pdf(http: httpx.Client, server: ServerHandle) -> None:
    corrupt = b"%PDF-1.7\n" + random.Random(5).randbytes(3000)
    assert_error(post_chat(http, chat(server, messages=file_message(corrupt))), 400, "PDF")


def test_password_protected_pdf(http: httpx.Client, server: ServerHandle) -> None:
    assert_error(post_chat(http, chat(server, messages=file_message(encrypted_pdf_bytes()))), 400, "password")


def test_too_many_pages(http: httpx.Client, server: ServerHandle) -> None:
    error = assert_error(
        post_chat(http, chat(server, messages=file_message(pdf_bytes(7)))), 400, "OCRSERVE_MAX_PAGES", "7", "6"
    )
    assert error["code"] == "limit_exceeded"


def test_too_many_pages_across_documents(http: httpx.Client, server: ServerHandle) -> None:
    messages = file_message(pdf_bytes(4))
    messages[0]["content"] += file_message(pdf_bytes(3))[0]["content"]
    assert_error(post_chat(http, chat(server, messages=messages)), 400, "OCRSERVE_MAX_PAGES")


def test_page_selection_out_of_range(http: httpx.Client, server: ServerHandle) -> None:
    body = chat(server, messages=file_message(pdf_bytes(2)), ocr={"pages": "5"})
    assert_error(post_chat(http, body), 400, "page 5")


def test_too_many_bytes(http: httpx.Client, server: ServerHandle) -> None:
    big = noise_png()
    assert len(big) > 2_000_000
    reply = post_chat(http, image_chat(server, data_url(big, "image/png")))
    assert_error(reply, 400, "OCRSERVE_MAX_DOCUMENT_BYTES", "2,000,000", f"{len(big):,}")


def test_too_many_pixels(http: httpx.Client, server: ServerHandle) -> None:
    huge = huge_blank_png()
    assert len(huge) < 2_000_000
    error = assert_error(
        post_chat(http, image_chat(server, data_url(huge, "image/png"))), 400, "OCRSERVE_MAX_PIXELS", "6000x6000"
    )
    assert error["code"] == "limit_exceeded"


def test_pdf_dpi_above_the_limit(http: httpx.Client, server: ServerHandle) -> None:
    body = chat(server, messages=file_message(pdf_bytes(1)), ocr={"dpi": 1000})
    error = assert_error(post_chat(http, body), 400, "OCRSERVE_MAX_DPI")
    assert "dpi" in (error["param"] or "")


# ---------------------------------------------------------------- URLs


def test_url_answering_404(http: httpx.Client, server: ServerHandle, doc_server) -> None:
    url = f"{doc_server.url}/missing.png"
    assert_error(post_chat(http, image_chat(server, url)), 400, "HTTP 404", code="fetch_failed")


def test_url_connection_refused(http: httpx.Client, server: ServerHandle) -> None:
    url = f"http://127.0.0.1:{free_port()}/page.png"
    assert_error(post_chat(http, image_chat(server, url)), 400, "connect", code="fetch_failed")


def test_url_body_too_large(http: httpx.Client, server: ServerHandle, doc_server) -> None:
    url = f"{doc_server.url}/big.png"
    assert_error(post_chat(http, image_chat(server, url)), 400, "OCRSERVE_MAX_DOCUMENT_BYTES", "2,000,000")


def test_non_http_scheme(http: httpx.Client, server: ServerHandle) -> None:
    error = assert_error(post_chat(http, image_chat(server, "ftp://example.com/page.png")), 400, "http")
    assert error["param"] == "messages[0].content[0].image_url.url"


def test_private_address_refused_by_default(strict_server: ServerHandle, doc_server) -> None:
    hits_before = len(doc_server.hits)
    with strict_server.client(Authorization="Bearer k1") as http:
        response = post_chat(http, image_chat(strict_server, f"{doc_server.url}/page.png"))
    error = assert_error(response, 400, "loopback", "OCRSERVE_URL_ALLOW_PRIVATE", code="url_not_allowed")
    assert "private" in error["message"]
    assert len(doc_server.hits) == hits_before  # refused before connecting


# ---------------------------------------------------------------- through the openai SDK


def test_sdk_raises_bad_request_without_retrying(server: ServerHandle) -> None:
    requests: list[httpx.Request] = []
    client = httpx.Client(event_hooks={"request": [requests.append]}, timeout=60.0)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=3, http_client=client) as sdk:
        with pytest.raises(openai.BadRequestError) as raised:
            sdk.chat.completions.create(
                model=server.model, messages=image_message(data_url(pdf_bytes(7), "application/pdf")), max_tokens=4
            )
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert raised.value.status_code == 400
    assert "OCRSERVE_MAX_PAGES" in raised.value.message
    assert raised.value.code == "limit_exceeded"
    assert len(requests) == 2  # one each: no retries

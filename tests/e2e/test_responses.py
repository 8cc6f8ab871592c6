"""/v1/responses with the real `openai` SDK, httpx and LiteLLM: foreground, background, streams, cancel, delete.

The tiny model is random: these tests check structure and invariants, never words.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported: no network

import httpx
import litellm
import openai
import pytest
from litellm.responses.utils import ResponsesAPIRequestUtils
from openai.types.responses import Response
from PIL import Image

from tests.fixtures import PAGE_SPLIT, ServerHandle, data_url, pdf_bytes

litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydantic")

DEADLINE_S = 60.0
TERMINAL = ("completed", "incomplete", "failed", "cancelled")
STREAM_TYPES_HEAD = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
STREAM_TYPES_TAIL = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120.0) as sdk:
        yield sdk


@pytest.fixture
def long_jobs(server: ServerHandle) -> Iterator[list[str]]:
    """Ids of long background responses; deleted (so cancelled) afterwards, even when the test failed half-way."""
    ids: list[str] = []
    yield ids
    with server.client() as http:
        for response_id in ids:
            http.delete(f"/v1/responses/{response_id}")


def image_input(png: bytes, text: str | None = None) -> list[dict]:
    content: list[dict] = [{"type": "input_image", "image_url": data_url(png, "image/png")}]
    if text:
        content.append({"type": "input_text", "text": text})
    return [{"role": "user", "content": content}]


def pdf_input(pages: int) -> list[dict]:
    part = {"type": "input_file", "filename": "doc.pdf", "file_data": data_url(pdf_bytes(pages), "application/pdf")}
    return [{"type": "message", "role": "user", "content": [part]}]


def start_long_job(client: openai.OpenAI, server: ServerHandle, long_jobs: list[str]) -> Response:
    """A background response that would run for minutes: six pages of up to 3000 tokens each."""
    created = client.responses.create(
        model=server.model,
        input=pdf_input(6),
        max_output_tokens=3000,
        background=True,
        extra_body={"ocr": {"output_format": "raw"}},
    )
    long_jobs.append(created.id)
    return created


def wait_until_done(client: openai.OpenAI, response_id: str) -> Response:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in TERMINAL or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def check_finished(response: Response, max_output_tokens: int) -> None:
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert isinstance(response.output_text, str)
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.status == response.status
    assert [part.type for part in message.content] == ["output_text"]
    assert response.error is None
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    if response.status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
    else:
        assert response.incomplete_details is None
    assert response.max_output_tokens == max_output_tokens
    assert response.parallel_tool_calls is False and response.tool_choice == "none" and response.tools == []


def test_create_with_an_image(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    response = client.responses.create(
        model=server.model,
        input=image_input(png),
        instructions="You read invoices.",
        max_output_tokens=8,
        metadata={"customer": "acme"},
    )
    assert isinstance(response, Response)
    check_finished(response, 8)
    assert response.model == server.model
    assert response.usage.input_tokens > 256  # the image tokens are counted
    assert response.usage.output_tokens <= 8
    assert response.metadata == {"customer": "acme"}
    assert response.instructions == "You read invoices."
    assert response.background is False
    assert response.model_extra["ocr_progress"] == {"pages_done": 1, "pages_total": 1}
    assert client.responses.retrieve(response.id).model_dump() == response.model_dump()  # stored


def test_pdf_input_file_in_a_typed_message(client: openai.OpenAI, server: ServerHandle) -> None:
    response = client.responses.create(
        model=server.model, input=pdf_input(2), max_output_tokens=6, extra_body={"ocr": {"output_format": "raw"}}
    )
    check_finished(response, 6)
    assert response.output_text.count(PAGE_SPLIT) == 1
    assert response.usage.input_tokens >= 2 * 257
    assert response.model_extra["ocr_progress"] == {"pages_done": 2, "pages_total": 2}


def test_text_input_and_store_false(client: openai.OpenAI, server: ServerHandle) -> None:
    response = client.responses.create(model=server.model, input="What is the total?", max_output_tokens=4, store=False)
    check_finished(response, 4)
    assert response.usage.input_tokens < 256  # no image
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_background_poll_and_replay(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    created = client.responses.create(
        model=server.model, input=pdf_input(2), max_output_tokens=8, background=True, metadata={"k": "v"}
    )
    assert created.status in ("queued", "in_progress")
    assert created.background is True
    assert created.usage is None
    assert created.model_extra["ocr_progress"]["pages_total"] == 2
    assert created.model_extra["ocr_progress"]["pages_done"] < 2

    done = wait_until_done(client, created.id)
    check_finished(done, 8)
    assert done.metadata == {"k": "v"}
    assert done.model_extra["ocr_progress"] == {"pages_done": 2, "pages_total": 2}

    events = list(client.responses.retrieve(created.id, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == f"response.{done.status}"
    assert events[-1].response.model_dump() == done.model_dump()
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == done.output_text

    later = list(client.responses.retrieve(created.id, stream=True, starting_after=3))
    assert [e.model_dump() for e in later] == [e.model_dump() for e in events[4:]]


def test_stream(client: openai.OpenAI, server: ServerHandle, png: bytes) -> None:
    events = list(
        client.responses.create(model=server.model, input=image_input(png), max_output_tokens=12, stream=True)
    )
    types = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert types[:4] == STREAM_TYPES_HEAD
    assert types[4 : 4 + len(deltas)] == ["response.output_text.delta"] * len(deltas)
    assert types[4 + len(deltas) :] == [*STREAM_TYPES_TAIL, f"response.{events[-1].response.status}"]
    assert [e.sequence_number for e in events] == list(range(len(events)))

    final = events[-1].response
    check_finished(final, 12)
    text = "".join(e.delta for e in deltas)
    assert text == final.output_text == events[-4].text
    assert {e.item_id for e in deltas} == {final.output[0].id}
    assert events[0].response.status == "queued" and events[0].response.output == []
    assert events[1].response.status == "in_progress"
    assert client.responses.retrieve(final.id).model_dump() == final.model_dump()


def test_raw_sse_frames_name_their_event(server: ServerHandle, png: bytes) -> None:
    body = {"model": server.model, "input": image_input(png), "max_output_tokens": 4, "stream": True}
    with server.client() as http, http.stream("POST", "/v1/responses", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [frame for frame in raw.split("\n\n") if frame.strip()]
    assert "[DONE]" not in raw
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.removeprefix("event: ") == json.loads(data_line.removeprefix("data: "))["type"]


def test_background_stream_survives_a_disconnect(client: openai.OpenAI, server: ServerHandle) -> None:
    """The random model never stops early in raw mode: 1000 tokens keep the job busy well after the client left."""
    stream = client.responses.create(
        model=server.model,
        input=pdf_input(1),
        max_output_tokens=1000,
        background=True,
        stream=True,
        extra_body={"ocr": {"output_format": "raw"}},
    )
    first = next(iter(stream))
    stream.close()
    assert first.type == "response.created"
    done = wait_until_done(client, first.response.id)
    assert done.status == "incomplete"  # ran to its token limit: leaving the stream did not cancel it
    assert done.usage.output_tokens == 1000


def test_foreground_stream_disconnect_cancels(
    client: openai.OpenAI, server: ServerHandle, long_jobs: list[str]
) -> None:
    stream = client.responses.create(
        model=server.model,
        input=pdf_input(6),
        max_output_tokens=3000,
        stream=True,
        extra_body={"ocr": {"output_format": "raw"}},
    )
    response_id = None
    for event in stream:
        if response_id is None:
            response_id = event.response.id
            long_jobs.append(response_id)
        if event.type == "response.output_text.delta":
            break
    stream.close()
    assert wait_until_done(client, response_id).status == "cancelled"


def test_cancel(server: ServerHandle, png: bytes, long_jobs: list[str]) -> None:
    requests: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [requests.append]}, timeout=120.0)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=2, http_client=http) as sdk:
        created = start_long_job(sdk, server, long_jobs)
        cancelled = sdk.responses.cancel(created.id)
        assert cancelled.status == "cancelled"
        assert cancelled.usage is None
        assert sdk.responses.retrieve(created.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError):
            sdk.responses.cancel(created.id)

        foreground = sdk.responses.create(model=server.model, input=image_input(png), max_output_tokens=2)
        with pytest.raises(openai.BadRequestError):
            sdk.responses.cancel(foreground.id)
    assert len(requests) == 6  # no retries


def test_cancel_keeps_the_pages_already_done(server: ServerHandle, long_jobs: list[str]) -> None:
    body = {
        "model": server.model,
        "input": pdf_input(6),
        "max_output_tokens": 60,
        "background": True,
        "ocr": {"output_format": "raw", "page_separator": "\n@@\n"},
    }
    with server.client() as http:
        response_id = http.post("/v1/responses", json=body).json()["id"]
        long_jobs.append(response_id)
        deadline = time.monotonic() + DEADLINE_S
        while http.get(f"/v1/responses/{response_id}").json()["ocr_progress"]["pages_done"] < 1:
            assert time.monotonic() < deadline, "no page finished"
            time.sleep(0.05)
        cancelled = http.post(f"/v1/responses/{response_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert 1 <= cancelled["ocr_progress"]["pages_done"] < 6
    text = cancelled["output"][0]["content"][0]["text"]
    assert text and text.count("\n@@\n") >= cancelled["ocr_progress"]["pages_done"] - 1


def test_delete_and_unknown_ids(client: openai.OpenAI, server: ServerHandle) -> None:
    response = client.responses.create(model=server.model, input="Hi", max_output_tokens=2)
    with server.client() as http:
        reply = http.delete(f"/v1/responses/{response.id}")
        assert reply.status_code == 200
        assert reply.json() == {"id": response.id, "object": "response", "deleted": True}
        for missing in (response.id, "resp_0123", response.id.removeprefix("resp_"), "chatcmpl-abc"):
            reply = http.get(f"/v1/responses/{missing}")
            assert reply.status_code == 404
            assert reply.json()["error"]["type"] == "invalid_request_error"
        chat = http.post(
            "/v1/chat/completions",
            json={"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
        )
        chat_job = chat.json()["id"].removeprefix("chatcmpl-")
        assert http.get(f"/v1/responses/resp_{chat_job}").status_code == 404  # a chat job is not a response
    for call in (client.responses.retrieve, client.responses.delete, client.responses.cancel):
        with pytest.raises(openai.NotFoundError):
            call(response.id)


@pytest.mark.parametrize(
    ("content", "param", "words"),
    [
        ([{"type": "input_audio", "input_audio": {}}], "input[0].content[0]", "input_text, input_image, input_file"),
        ([{"type": "input_image", "image_url": "data:image/png;base64"}], "input[0].content[0].image_url", "data URL"),
        ([{"type": "input_file", "filename": "a.pdf", "file_data": "%%%"}], "input[0].content[0].file_data", "base64"),
        ([{"type": "input_file", "file_url": "https://example.com/a.pdf"}], "input[0].content[0]", "file_url"),
    ],
)
def test_bad_input_is_a_400(server: ServerHandle, content: list, param: str, words: str) -> None:
    body = {"model": server.model, "input": [{"role": "user", "content": content}], "instructions": "Read it."}
    with server.client() as http:
        reply = http.post("/v1/responses", json=body)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param)
    assert words in error["message"]


def test_sdk_raises_bad_request_for_bad_input(client: openai.OpenAI, server: ServerHandle) -> None:
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model=server.model, input=[{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]
        )


def test_litellm_responses(server: ServerHandle, png: bytes) -> None:
    response = litellm.responses(
        model=f"openai/{server.model}",
        input=image_input(png),
        max_output_tokens=6,
        api_base=f"{server.url}/v1",
        api_key="x",
        timeout=120,
        num_retries=0,
    )
    assert response.status in ("completed", "incomplete")
    assert response.usage.input_tokens > 256


def test_litellm_get_cancel_delete(client: openai.OpenAI, server: ServerHandle, long_jobs: list[str]) -> None:
    """A background response created with the openai SDK, then read, cancelled and deleted by LiteLLM."""
    created = start_long_job(client, server, long_jobs)
    options = {"api_base": f"{server.url}/v1", "api_key": "x", "timeout": 120, "custom_llm_provider": "openai"}

    async def scenario() -> None:
        fetched = await litellm.aget_responses(response_id=created.id, **options)
        assert fetched.status in ("queued", "in_progress")
        decoded = ResponsesAPIRequestUtils.decode_responses_api_response_id(fetched.id)  # LiteLLM wraps ids
        assert decoded["response_id"] == created.id
        cancelled = await litellm.acancel_responses(response_id=created.id, **options)
        assert cancelled.status == "cancelled"
        deleted = await litellm.adelete_responses(response_id=created.id, **options)
        assert deleted.deleted is True
        # what the server promises is the status and the envelope; which of its exception classes a LiteLLM
        # release picks for them has changed before (BadRequestError, then NotFoundError)
        with pytest.raises(openai.APIStatusError, match="response_not_found") as gone:
            await litellm.aget_responses(response_id=created.id, **options)
        assert gone.value.status_code == 404

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE_S))


def test_cancelling_a_finished_response_names_its_status(
    client: openai.OpenAI, server: ServerHandle, png: bytes
) -> None:
    created = client.responses.create(model=server.model, input=image_input(png), max_output_tokens=1, background=True)
    finished = wait_until_done(client, created.id)
    assert finished.status == "incomplete"  # one token: the page stopped at max_output_tokens
    with server.client() as http:
        reply = http.post(f"/v1/responses/{created.id}/cancel")
    assert reply.status_code == 400
    assert "already incomplete" in reply.json()["error"]["message"]


def test_several_jobs_run_at_once_over_one_model(
    client: openai.OpenAI, server: ServerHandle, long_jobs: list[str]
) -> None:
    """Three long background jobs are all `in_progress` at the same moment: the worker (embedded or Celery) runs
    them side by side, their pages decoding in the model's one batch, and the registry counts them."""
    created = [start_long_job(client, server, long_jobs) for _ in range(3)]
    deadline = time.monotonic() + DEADLINE_S
    while True:
        statuses = [client.responses.retrieve(job.id).status for job in created]
        if statuses == ["in_progress"] * 3:
            break
        assert "queued" in statuses or "in_progress" in statuses, statuses
        assert time.monotonic() < deadline, f"the jobs never ran together: {statuses}"
        time.sleep(0.05)
    with server.client() as http:
        while True:  # a job shows in_progress as it starts reading its pages: they reach the batch a little later
            workers = http.get("/v1/devices/status").json()["workers"]
            busiest = max(workers, key=lambda worker: worker["running_sequences"])
            load = http.get("/load").json()
            if busiest["running_sequences"] >= 2 and busiest["jobs_in_flight"] >= 2 and load["running_sequences"] >= 2:
                assert load["kv_cache_tokens"] > 0 and load["server_load"] >= 2
                break
            assert time.monotonic() < deadline, f"never two rows of two jobs in the batch: {workers}"
            time.sleep(0.05)


def test_page_images_of_a_background_response(client: openai.OpenAI, server: ServerHandle) -> None:
    """Each page as the model read it, in the pixels of its layout line; kept for background layout responses."""
    layout = {"ocr": {"output_format": "layout", "dpi": 72}}
    created = client.responses.create(
        model=server.model, input=pdf_input(2), max_output_tokens=4, background=True, extra_body=layout
    )
    done = wait_until_done(client, created.id)
    lines = [json.loads(line) for line in done.output_text.splitlines()]
    foreground = client.responses.create(model=server.model, input=pdf_input(1), max_output_tokens=2)
    markdown = client.responses.create(model=server.model, input=pdf_input(1), max_output_tokens=2, background=True)
    wait_until_done(client, markdown.id)
    with server.client() as http:
        for line in lines:
            reply = http.get(f"/v1/responses/{created.id}/pages/{line['page']}")
            assert (reply.status_code, reply.headers["content-type"]) == (200, "image/png")
            assert Image.open(io.BytesIO(reply.content)).size == (line["width"], line["height"])
        not_kept = (foreground.id, markdown.id)  # a foreground response's documents, a markdown one's
        for path in (f"/v1/responses/{created.id}/pages/3", *(f"/v1/responses/{i}/pages/1" for i in not_kept)):
            missing = http.get(path)
            assert missing.status_code == 404 and missing.json()["error"]["param"] == "page", missing.text
        assert http.get("/v1/responses/resp_unknown/pages/1").status_code == 404

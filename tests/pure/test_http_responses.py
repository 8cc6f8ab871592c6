"""The Responses API in process: the event mapper (job events → stream events, numbered, resumable), the response
object through a background job's life, and what chat and completions make of a job's events. Every body and
event is also parsed with the openai SDK's own types, as a client would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from app.serving.responses.events import ResponseEvents
from ocr_engine.errors import LimitExceeded
from ocr_engine.model_info import ModelInfo
from ocr_engine.results import OcrResult, Usage
from ocr_engine.token_texts import TokenTexts
from tests.pure.in_process import MODEL, chat, error_of, serving
from tests.pure.scripted import ScriptedDispatcher, completed, failed, page, waiting
from workers.events import JobCancelled, JobCompleted, JobError, JobFailed, JobStarted, PageFinished, TextDelta
from workers.jobs import JobRecord

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)


def mapped(model_info: ModelInfo, *events: Any, record: JobRecord | None = None) -> list[dict[str, Any]]:
    """The stream events of a job's events, as JSON objects (the SDK parses each)."""
    mapper = ResponseEvents(record or JobRecord(pages_total=2), TokenTexts(model_info.tokenizer))
    out = [event for event in mapper.created()]
    for event in events:
        out.extend(mapper.map(event))
    objects = [json.loads(_json(event)) for event in out]
    for each in objects:
        STREAM_EVENT.validate_python(each)
    return objects


def _json(event: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(event)


def test_a_completed_job_maps_to_the_events_of_a_response(model_info: ModelInfo) -> None:
    result = OcrResult(text="One\n\nTwo", pages=[page(0, "One"), page(1, "Two")], usage=Usage(), finish_reason="stop")
    events = mapped(
        model_info,
        JobStarted(pages_total=2),
        TextDelta(page=0, text="One"),
        PageFinished(page=0, pages_done=1, pages_total=2, finish_reason="stop"),
        TextDelta(page=1, text=""),  # an empty delta (text held back) is no event
        TextDelta(page=1, text="\n\nTwo"),
        PageFinished(page=1, pages_done=2, pages_total=2, finish_reason="stop"),
        JobCompleted(result=result),
    )
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(10))
    assert [event["delta"] for event in events if event["type"].endswith(".delta")] == ["One", "\n\nTwo"]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "One\n\nTwo"
    assert final["ocr_progress"] == {"pages_done": 2, "pages_total": 2}


def test_a_job_that_ran_out_of_tokens_is_incomplete(model_info: ModelInfo) -> None:
    result = OcrResult(text="On", pages=[page(0, "On", "length")], usage=Usage(), finish_reason="length")
    events = mapped(model_info, JobCompleted(result=result))  # no `started` seen: the item is opened first
    assert [event["type"] for event in events][:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    final = events[-1]
    assert final["type"] == "response.incomplete" and final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_cancelled_job_is_an_incomplete_response_that_says_cancelled(model_info: ModelInfo) -> None:
    events = mapped(model_info, JobStarted(pages_total=1), TextDelta(page=0, text="Hal"), JobCancelled())
    final = events[-1]
    assert final["type"] == "response.incomplete" and final["response"]["status"] == "cancelled"
    assert final["response"]["output"][0]["content"][0]["text"] == "Hal", "the text read before the end is kept"


@pytest.mark.parametrize(("kind", "code"), [("invalid_request", "invalid_prompt"), ("server", "server_error")])
def test_a_failed_job_is_a_failed_response_with_the_sdks_error_code(
    model_info: ModelInfo, kind: str, code: str
) -> None:
    error = JobError(code="unsupported_document", message="page 2 could not be read", kind=kind)
    final = mapped(model_info, JobStarted(pages_total=1), JobFailed(error=error))[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["error"] == {"code": code, "message": "page 2 could not be read"}


# ---------------------------------------------------------------- through the routes


def background(client: Any, **fields: Any) -> dict[str, Any]:
    reply = client.post("/v1/responses", json={"model": MODEL, "input": "Hi", "background": True, **fields})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    Response.model_validate(body)
    return body


def test_a_background_response_through_its_life(model_info: ModelInfo) -> None:
    dispatcher = ScriptedDispatcher(waiting)
    with serving(model_info, dispatcher) as client:
        created = background(client, metadata={"ticket": "42"})
        assert created["status"] == "queued" and created["output"] == [] and created["metadata"] == {"ticket": "42"}
        job_id = created["id"].removeprefix("resp_")
        for event in completed("Hello")(dispatcher.submitted[0])[:2]:
            dispatcher.memory.add(job_id, event)
        running = client.get(f"/v1/responses/{created['id']}").json()
        assert running["status"] == "in_progress" and running["output"][0]["content"] == []
        for event in completed("Hello")(dispatcher.submitted[0])[2:]:
            dispatcher.memory.add(job_id, event)
        done = client.get(f"/v1/responses/{created['id']}").json()
        Response.model_validate(done)
        assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == "Hello"
        assert done["ocr_progress"] == {"pages_done": 1, "pages_total": 1}

        replay = client.get(f"/v1/responses/{created['id']}", params={"stream": "true", "starting_after": 4})
        events = [json.loads(line.removeprefix("data: ")) for line in replay.text.splitlines() if line[:5] == "data:"]
        assert [event["sequence_number"] for event in events] == list(range(5, 9)), "resumed after event 4"
        assert events[-1]["type"] == "response.completed"

        assert client.delete(f"/v1/responses/{created['id']}").json() == {
            "id": created["id"],
            "object": "response",
            "deleted": True,
        }
        gone = error_of(client.get(f"/v1/responses/{created['id']}"), 404)
        assert (gone["code"], gone["param"]) == ("response_not_found", "response_id")


def test_cancelling_a_queued_response(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(waiting)) as client:
        created = background(client)
        cancelled = client.post(f"/v1/responses/{created['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        again = error_of(client.post(f"/v1/responses/{created['id']}/cancel"), 400)
    assert again["message"].startswith("the response is already cancelled")


def test_a_failed_background_response_keeps_its_text_and_error(model_info: ModelInfo) -> None:
    error = JobError.of(LimitExceeded("page 3 is too large"))
    with serving(model_info, ScriptedDispatcher(failed(error, after="Page one"))) as client:
        body = client.get(f"/v1/responses/{background(client)['id']}").json()
    Response.model_validate(body)
    assert body["status"] == "failed" and body["error"] == {"code": "invalid_prompt", "message": "page 3 is too large"}
    assert body["output"][0]["content"][0]["text"] == "Page one"


def test_unknown_ids_and_ids_of_other_objects_are_404s(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        chat_id = client.post("/v1/chat/completions", json=chat()).json()["id"].removeprefix("chatcmpl-")
        for response_id in ("resp_nope", chat_id, f"resp_{chat_id}"):
            assert error_of(client.get(f"/v1/responses/{response_id}"), 404)["code"] == "response_not_found"


def test_chat_replies_and_streams_what_the_job_wrote(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(completed("One", "Two"))) as client:
        reply = client.post("/v1/chat/completions", json=chat()).json()
        stream = client.post("/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True}))
    ChatCompletion.model_validate(reply)
    assert reply["choices"][0]["message"]["content"] == "One\n\n<--- Page Split --->\n\nTwo"
    assert reply["usage"] == {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}
    assert [p["page"] for p in reply["ocr_pages"]] == [1, 2]
    frames = [line.removeprefix("data: ") for line in stream.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(frame) for frame in frames[:-1]]
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text == reply["choices"][0]["message"]["content"]
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].usage is not None


def test_completions_echo_the_prompt_before_the_text(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(completed(" world"))) as client:
        body = {"model": MODEL, "prompt": "Hello", "echo": True, "max_tokens": 3}
        reply = client.post("/v1/completions", json=body).json()
    assert reply["choices"][0]["text"] == "Hello world" and reply["object"] == "text_completion"

"""app.errors in process: every error the API answers with, in the OpenAI envelope, whether it is raised while the
request is served or reported by a job; and the rewriting of msgspec's validation messages into messages and
params a client can act on."""

from __future__ import annotations

from typing import Any

import pytest

from ocr_engine.errors import (
    InvalidInput,
    JobTimedOut,
    LimitExceeded,
    ModelUnavailable,
    OcrError,
    ServiceUnavailable,
    UnsupportedDocument,
)
from ocr_engine.model_info import ModelInfo
from ocr_engine.request import OcrRequest
from tests.pure.in_process import MODEL, chat, error_of, serving
from tests.pure.scripted import ScriptedDispatcher, completed, failed, waiting
from workers.dispatch import Readiness
from workers.events import JobCancelled, JobError
from workers.jobs import JobRecord


class WorkersAsleep(ServiceUnavailable):
    """A kind of unavailability the error mapping has never heard of: its kind alone must make it a 503."""

    code = "workers_asleep"


# (the error, then status, OpenAI type, code and param of the reply)
DOMAIN_ERRORS: list[tuple[Exception, int, str, str, str | None]] = [
    (InvalidInput("bad field", param="ocr.dpi"), 400, "invalid_request_error", "invalid_input", "ocr.dpi"),
    (UnsupportedDocument("not a PDF"), 400, "invalid_request_error", "unsupported_document", None),
    (LimitExceeded("too many pages", param="messages"), 400, "invalid_request_error", "limit_exceeded", "messages"),
    (ServiceUnavailable("Redis is away"), 503, "service_unavailable_error", "service_unavailable", None),
    (ModelUnavailable("no weights"), 503, "service_unavailable_error", "model_unavailable", None),
    # a param names the request field at fault: only a client's error has one to show
    (WorkersAsleep("every worker sleeps", param="x"), 503, "service_unavailable_error", "workers_asleep", None),
    (JobTimedOut("ran too long", param="x"), 500, "server_error", "time_limit_exceeded", None),
    (OcrError("ours"), 500, "server_error", "ocr_error", None),
]
IDS = [type(error).__name__ for error, *_ in DOMAIN_ERRORS]


class RaisingDispatcher(ScriptedDispatcher):
    """Raises `error` when a job is submitted: an error raised while the request is served."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def submit(self, record: JobRecord, request: OcrRequest) -> JobRecord:
        raise self.error


@pytest.mark.parametrize(("error", "status", "kind", "code", "param"), DOMAIN_ERRORS, ids=IDS)
def test_a_domain_error_has_one_status_raised_in_the_api_or_reported_by_a_job(
    model_info: ModelInfo, error: OcrError, status: int, kind: str, code: str, param: str | None
) -> None:
    expected = {"message": error.message, "type": kind, "code": code, "param": param}
    with serving(model_info, RaisingDispatcher(error)) as client:
        assert error_of(client.post("/v1/chat/completions", json=chat()), status) == expected
    with serving(model_info, ScriptedDispatcher(failed(JobError.of(error)))) as client:
        assert error_of(client.post("/v1/chat/completions", json=chat()), status) == expected


@pytest.mark.parametrize(("error", "status", "kind", "code", "param"), DOMAIN_ERRORS, ids=IDS)
def test_a_job_failing_mid_stream_sends_the_same_error_in_the_stream(
    model_info: ModelInfo, error: OcrError, status: int, kind: str, code: str, param: str | None
) -> None:
    with serving(model_info, ScriptedDispatcher(failed(JobError.of(error), after="Hel"))) as client:
        reply = client.post("/v1/chat/completions", json=chat(stream=True))
    assert reply.status_code == 200
    frames = [line.removeprefix("data: ") for line in reply.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    assert '"error":' in frames[-2] and f'"code":"{code}"' in frames[-2] and f'"type":"{kind}"' in frames[-2]


def test_an_unexpected_error_is_a_500_that_shows_nothing_of_it(model_info: ModelInfo) -> None:
    with serving(model_info, RaisingDispatcher(RuntimeError("secret /etc/path"))) as client:
        error = error_of(client.post("/v1/chat/completions", json=chat()), 500)
    assert error == {
        "message": "internal server error",
        "type": "server_error",
        "code": "internal_error",
        "param": None,
    }


def test_an_unexpected_error_in_a_job_is_hidden_behind_a_generic_one(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(failed(JobError.of(KeyError("secret"))))) as client:
        error = error_of(client.post("/v1/chat/completions", json=chat()), 500)
    assert error["message"] == "internal error while running the job" and error["code"] == "internal_error"


def test_a_job_error_of_an_older_worker_keeps_its_status(model_info: ModelInfo) -> None:
    """Workers before typed error kinds sent `model_unavailable` as a server error: still a 503."""
    legacy = JobError(code="model_unavailable", message="no weights", kind="server")
    with serving(model_info, ScriptedDispatcher(failed(legacy))) as client:
        assert error_of(client.post("/v1/chat/completions", json=chat()), 503)["type"] == "service_unavailable_error"


def test_a_job_cancelled_before_it_answered_is_a_400(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(lambda request: [JobCancelled()])) as client:
        error = error_of(client.post("/v1/chat/completions", json=chat()), 400)
    assert (error["code"], error["message"]) == ("cancelled", "the job was cancelled")


# ---------------------------------------------------------------- the HTTP layer's own errors


def test_a_missing_or_wrong_key_is_a_401_and_a_user_key_on_an_admin_route_a_403(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(), api_keys=("k1",), admin_keys=("a1",)) as client:
        missing = error_of(client.post("/v1/chat/completions", json=chat()), 401)
        wrong = error_of(client.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        user = error_of(client.get("/v1/devices/status", headers={"Authorization": "Bearer k1"}), 403)
    assert missing["code"] == wrong["code"] == "invalid_api_key" and "Bearer" in missing["message"]
    assert user["code"] == "insufficient_permissions" and "OCRSERVE_ADMIN_KEYS" in user["message"]


def test_a_body_over_the_limit_is_a_413_naming_the_setting(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(), max_request_bytes=1000) as client:
        error = error_of(client.post("/v1/chat/completions", json=chat(stop=["x" * 2000])), 413)
    assert error["code"] == "limit_exceeded" and "OCRSERVE_MAX_REQUEST_BYTES=1000" in error["message"]


def test_an_undeclared_method_is_a_405_with_allow(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        reply = client.put("/v1/chat/completions", json=chat())
    assert error_of(reply, 405)["type"] == "invalid_request_error"
    assert set(reply.headers["allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_an_unknown_model_is_a_404_naming_it(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        error = error_of(client.post("/v1/chat/completions", json=chat(model="gpt-4o")), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model" and "`gpt-4o`" in error["message"]


def test_a_model_that_cannot_run_is_a_503_and_the_request_is_given_back(model_info: ModelInfo) -> None:
    """The rate counts requests that were taken: one refused by a failed engine is not."""
    dispatcher = ScriptedDispatcher(readiness=Readiness.FAILED)
    with serving(model_info, dispatcher, rate_limit_rpm=1) as client:
        for _ in range(2):
            error = error_of(client.post("/v1/chat/completions", json=chat()), 503)
            assert error["code"] == "model_unavailable" and error["message"] == "the test says failed"
        dispatcher.readiness = Readiness.READY
        assert client.post("/v1/chat/completions", json=chat()).status_code == 200


def test_over_the_rate_is_a_429_with_retry_after(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(), rate_limit_rpm=1) as client:
        assert client.post("/v1/chat/completions", json=chat()).status_code == 200
        reply = client.post("/v1/chat/completions", json=chat())
    error = error_of(reply, 429)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "OCRSERVE_RATE_LIMIT_RPM=1" in error["message"] and 1 <= int(reply.headers["retry-after"]) <= 60


def test_a_full_queue_is_a_503_with_retry_after(model_info: ModelInfo) -> None:
    dispatcher = ScriptedDispatcher()
    dispatcher.queued[False] = 5
    with serving(model_info, dispatcher, max_queued_interactive_pages=5) as client:
        reply = client.post("/v1/chat/completions", json=chat())
    error = error_of(reply, 503)
    assert (error["type"], error["code"]) == ("service_unavailable_error", "queue_full")
    assert "OCRSERVE_MAX_QUEUED_INTERACTIVE_PAGES=5" in error["message"] and reply.headers["retry-after"] == "5"


def test_jobs_in_flight_over_the_limit_are_a_429(model_info: ModelInfo) -> None:
    with serving(model_info, ScriptedDispatcher(waiting), max_concurrent_jobs=1) as client:
        body = {"model": MODEL, "input": "Hi", "background": True}
        assert client.post("/v1/responses", json=body).status_code == 200
        error = error_of(client.post("/v1/responses", json=body), 429)
    assert "OCRSERVE_MAX_CONCURRENT_JOBS=1" in error["message"]


# ---------------------------------------------------------------- validation messages rewritten


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"messages": [{"role": "user", "content": "Hi"}]}, "missing required field `model`", "model"),
        (
            {"model": MODEL, "messages": [{"content": "Hi"}]},
            "missing required field `messages[0].role`",
            "messages[0].role",
        ),
        (
            chat(tools=[{"type": "function", "function": {"name": "f"}}]),
            "`tools` is not supported by this server: leave it out (or at its default)",
            "tools",
        ),
        (
            chat(response_format={"type": "json_object"}),
            "`response_format` is not supported by this server: leave it out (or at its default)",
            "response_format",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
            "unsupported content part type 'input_audio'; supported: text, image_url, file",
            "messages[0].content[0].type",
        ),
        (chat(max_tokens="4"), "Expected `int | null`, got `str` (at `max_tokens`)", "max_tokens"),
        (chat(temperature=3), "Expected `float` <= 2.0 (at `temperature`)", "temperature"),
        (chat(top_p=0), "Expected `float` > 0.0 (at `top_p`)", "top_p"),
        (chat(stop=list("abcde")), "Expected `array` of length <= 4 (at `stop`)", "stop"),
        (chat(messages=[]), "Expected `array` of length >= 1 (at `messages`)", "messages"),
        (chat(ocr={"colour": "blue"}), "Object contains unknown field `colour` (at `ocr`)", "ocr"),
    ],
    ids=[
        "missing",
        "missing-nested",
        "unsupported",
        "unsupported-value",
        "part-type",
        "type",
        "above",
        "below",
        "too-long",
        "empty",
        "unknown",
    ],
)
def test_validation_messages_name_the_field_to_fix(
    model_info: ModelInfo, body: dict[str, Any], message: str, param: str
) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        error = error_of(client.post("/v1/chat/completions", json=body), 400)
    assert (error["message"], error["param"], error["code"]) == (message, param, "invalid_request")


@pytest.mark.parametrize(
    ("path", "body", "message", "param"),
    [
        ("/v1/chat/completions", chat(n=2), "only n=1 is supported", "n"),
        (
            "/v1/chat/completions",
            chat(max_tokens=5000),
            "max_tokens must be between 1 and the model's length of 4096 tokens, got 5000",
            "max_tokens",
        ),
        (
            "/v1/completions",
            {"model": MODEL, "prompt": ["a", "b"]},
            "exactly one prompt is supported (a text, or a list of token ids), got a list of 2",
            "prompt",
        ),
    ],
    ids=["n", "max-tokens", "prompts"],
)
def test_values_the_server_cannot_serve_are_named(
    model_info: ModelInfo, path: str, body: dict[str, Any], message: str, param: str
) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        error = error_of(client.post(path, json=body), 400)
    assert (error["message"], error["param"]) == (message, param)


def test_a_metadata_key_error_is_on_metadata(model_info: ModelInfo) -> None:
    body = {"model": MODEL, "input": "Hi", "metadata": {"k" * 65: "v"}}
    with serving(model_info, ScriptedDispatcher()) as client:
        error = error_of(client.post("/v1/responses", json=body), 400)
    assert error["param"] == "metadata" and error["message"].endswith("(at `metadata`)")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the request body is missing; send a JSON object"),
        (b"{not json", "the request body is not valid JSON: JSON is malformed: object keys must be strings (byte 1)"),
        (
            b'{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"x": '
            + b"[" * 10_000
            + b"]" * 10_000
            + b"}]}",
            "the request body is not valid JSON: arrays and objects nest too deeply",
        ),
    ],
    ids=["empty", "malformed", "deep"],
)
def test_a_body_that_is_not_a_json_object_says_so(model_info: ModelInfo, content: bytes, message: str) -> None:
    with serving(model_info, ScriptedDispatcher()) as client:
        reply = client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    error = error_of(reply, 400)
    assert error["message"].startswith(message) and error["param"] is None


def test_a_valid_request_reaches_the_dispatcher_as_its_engine_request(model_info: ModelInfo) -> None:
    dispatcher = ScriptedDispatcher(completed("Hello"))
    with serving(model_info, dispatcher) as client:
        reply = client.post("/v1/chat/completions", json=chat(temperature=0.5, stop=["END"], seed=7))
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Hello"
    (request,) = dispatcher.submitted
    assert (request.prompt, request.documents, request.output_format) == ("Hi", (), "markdown")
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.stop, sampling.seed) == (4, 0.5, ("END",), 7)

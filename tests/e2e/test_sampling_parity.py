"""OpenAI's penalties and logit_bias and vLLM's sampling extensions through the openai SDK, on both dispatchers:
accepted, honoured (checked on token counts), and refused with a 400 naming the field when out of range."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import openai
import pytest

from ocr_engine.testing import EOS
from tests.fixtures import ServerHandle

PROMPT = "The quick brown fox jumps over the lazy dog. Table of contents"
TOKENS = 40


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def complete(client: openai.OpenAI, server: ServerHandle, **extra: object) -> openai.types.Completion:
    extra_body = {key: extra.pop(key) for key in ("repetition_penalty", "min_tokens", "ignore_eos") if key in extra}
    fields = {"max_tokens": TOKENS, "temperature": 0, **extra}
    return client.completions.create(model=server.model, prompt=PROMPT, extra_body=extra_body, **fields)


def most_repeated(text: str) -> int:
    """How often the text's most frequent 3-character piece occurs (bytes that decode to U+FFFD left out: a
    random model's text is full of them). The engine tests count the token ids themselves."""
    pieces = [text[i : i + 3] for i in range(len(text) - 2)]
    return max(Counter(piece for piece in pieces if "\ufffd" not in piece).values())


def eos_id(http: httpx.Client, server: ServerHandle) -> int:
    reply = http.post("/tokenize", json={"model": server.model, "prompt": EOS, "add_special_tokens": False})
    (token,) = reply.json()["tokens"]
    return token


@pytest.mark.parametrize(
    "penalty", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"repetition_penalty": 2.0}]
)
def test_each_penalty_repeats_less(client, server, penalty: dict) -> None:
    plain = complete(client, server).choices[0].text
    penalized = complete(client, server, **penalty).choices[0].text
    assert penalized != plain
    assert most_repeated(penalized) < most_repeated(plain)


def test_logit_bias_min_tokens_and_ignore_eos(client, server, http) -> None:
    eos_first = {str(eos_id(http, server)): 100}
    ended = complete(client, server, logit_bias=eos_first)
    assert (ended.choices[0].text, ended.choices[0].finish_reason, ended.usage.completion_tokens) == ("", "stop", 0)
    held = complete(client, server, logit_bias=eos_first, min_tokens=5)
    assert (held.choices[0].finish_reason, held.usage.completion_tokens) == ("stop", 5)
    ignored = complete(client, server, logit_bias=eos_first, ignore_eos=True, max_tokens=7)
    assert (ignored.choices[0].finish_reason, ignored.usage.completion_tokens) == ("length", 7)


def test_chat_takes_the_same_fields(client, server) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    plain = client.chat.completions.create(model=server.model, messages=messages, max_tokens=TOKENS)
    penalized = client.chat.completions.create(
        model=server.model, messages=messages, max_tokens=TOKENS, frequency_penalty=2.0
    )
    assert penalized.choices[0].message.content != plain.choices[0].message.content


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frequency_penalty", 2.5),
        ("presence_penalty", -3),
        ("repetition_penalty", 0),
        ("logit_bias", {"not-a-token": 1}),
        ("logit_bias", {"99999999": 1}),
        ("logit_bias", {"1": 101}),
        ("min_tokens", -1),
        ("min_tokens", TOKENS + 1),
    ],
)
def test_out_of_range_is_a_400_naming_the_field(client, server, field: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=server.model, prompt=PROMPT, max_tokens=TOKENS, extra_body={field: value})
    assert raised.value.body["param"].startswith(field), raised.value.body


UNSUPPORTED_CHAT = {
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "auto",
    "functions": [{"name": "f"}],
    "function_call": "auto",
    "audio": {"voice": "alloy", "format": "wav"},
    "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "x"},
    "response_format": {"type": "json_object"},
    "web_search_options": {},
}


@pytest.mark.parametrize(("field", "value"), list(UNSUPPORTED_CHAT.items()))
def test_an_unsupported_chat_parameter_is_a_400_naming_it(client, server, field: str, value: object) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=server.model, messages=messages, max_tokens=2, extra_body={field: value})
    assert raised.value.body["param"] == field and "not supported" in raised.value.body["message"]


def test_unsupported_parameters_at_their_off_values_are_accepted(client, server) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    off = {
        "tools": [],
        "tool_choice": "none",
        "logprobs": False,
        "top_logprobs": 0,
        "response_format": {"type": "text"},
    }
    reply = client.chat.completions.create(model=server.model, messages=messages, max_tokens=2, extra_body=off)
    assert reply.choices[0].finish_reason in ("stop", "length")
    completion = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2, best_of=1, logprobs=0)
    assert completion.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize(("field", "value"), [("best_of", 3), ("suffix", "end")])
def test_an_unsupported_completions_parameter_is_a_400_naming_it(client, server, field: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2, extra_body={field: value})
    assert raised.value.body["param"] == field and "not supported" in raised.value.body["message"]


UNSUPPORTED_RESPONSES = {
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
    "tool_choice": "required",
    "prompt": {"id": "pmpt_1"},
    "conversation": "conv_1",
    "previous_response_id": "resp_1",
    "tools": [{"type": "web_search"}],
}


@pytest.mark.parametrize(("field", "value"), list(UNSUPPORTED_RESPONSES.items()))
def test_an_unsupported_responses_parameter_is_a_400_naming_it(client, server, field: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=server.model, input=PROMPT, max_output_tokens=2, extra_body={field: value})
    assert raised.value.body["param"] == field and "not supported" in raised.value.body["message"]


def test_responses_fields_at_their_off_values_are_accepted(client, server) -> None:
    off = {"text": {"format": {"type": "text"}}, "tool_choice": "none", "include": []}
    response = client.responses.create(model=server.model, input=PROMPT, max_output_tokens=2, extra_body=off)
    assert response.status in ("completed", "incomplete")

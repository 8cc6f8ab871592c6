"""Log probabilities and page confidence through the real `openai` SDK, on both dispatchers: the SDK's own types
parse every shape (chat, chat stream, completions, responses and their stream), and the figures equal the
log-softmax of the model's logits, worked out here with one uncached forward of the same checkpoint."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from ocr_engine.models.base import PreparedSequence
from ocr_engine.models.loading import load_adapter
from ocr_engine.token_texts import TokenTexts
from tests.fixtures import ServerHandle
from tests.model.rows import model_logprobs

PROMPT = "The quick brown fox jumps over the lazy dog. Table of contents"  # greedy: 8 plain tokens, no tags
STEPS = 8
TOP = 3
TOLERANCE = 1e-4


class Reference:
    """The greedy tokens of a prompt and, per token, its log probability and the TOP most likely tokens."""

    def __init__(self, checkpoint: Path, prompt_ids: list[int]) -> None:
        adapter = load_adapter(str(checkpoint), device="cpu")
        self.texts = TokenTexts(adapter.tokenizer)
        sequence = PreparedSequence(input_ids=prompt_ids)
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.top: list[list[tuple[int, float]]] = []
        for _ in range(STEPS):
            distribution = model_logprobs(adapter, sequence, [*self.ids, 0])[-1]  # the next token's
            token = int(distribution.argmax())
            values, ids = distribution.topk(TOP)
            self.ids.append(token)
            self.logprobs.append(float(distribution[token]))
            self.top.append(list(zip(ids.tolist(), values.tolist(), strict=True)))
        assert adapter.eos_token_id not in self.ids and not set(self.ids) & set(adapter.tokenizer.added_tokens_decoder)

    def check_entries(self, entries: list) -> None:
        """Chat's and the Responses API's shape: token, bytes, logprob and top_logprobs per token."""
        assert len(entries) == STEPS
        for entry, token, logprob, top in zip(entries, self.ids, self.logprobs, self.top, strict=True):
            assert (entry.token, entry.bytes) == tuple(self.texts(token))
            assert entry.logprob == pytest.approx(logprob, abs=TOLERANCE)
            assert [(t.token, t.bytes) for t in entry.top_logprobs] == [tuple(self.texts(i)) for i, _ in top]
            assert [t.logprob for t in entry.top_logprobs] == pytest.approx([v for _, v in top], abs=TOLERANCE)


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120.0) as client:
        yield client


@pytest.fixture(scope="module")
def prompt_ids(server: ServerHandle) -> list[int]:
    with server.client() as http:
        reply = http.post("/tokenize", json={"messages": [{"role": "user", "content": PROMPT}]})
    return reply.json()["tokens"]


@pytest.fixture(scope="module")
def reference(tiny_checkpoint: Path, prompt_ids: list[int]) -> Reference:
    return Reference(tiny_checkpoint, prompt_ids)


MESSAGES = [{"role": "user", "content": PROMPT}]


def test_chat_logprobs_and_the_page_confidence(client, server, reference) -> None:
    reply = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=STEPS, logprobs=True, top_logprobs=TOP
    )
    reference.check_entries(reply.choices[0].logprobs.content)
    (page,) = reply.ocr_pages  # the extension field, read through the SDK's extra fields
    probabilities = [math.exp(logprob) for logprob in reference.logprobs]  # every token is text here (no tags)
    assert page["page"] == 1 and page["finish_reason"] == "length"
    assert page["confidence"]["tokens"] == STEPS
    assert page["confidence"]["mean"] == pytest.approx(sum(probabilities) / STEPS, abs=TOLERANCE)
    assert page["confidence"]["min"] == pytest.approx(min(probabilities), abs=TOLERANCE)
    assert 0 < page["confidence"]["min"] <= page["confidence"]["mean"] <= 1


def test_chat_without_logprobs_still_reports_confidence(client, server) -> None:
    reply = client.chat.completions.create(model=server.model, messages=MESSAGES, max_tokens=STEPS)
    assert reply.choices[0].logprobs is None
    assert reply.ocr_pages[0]["confidence"]["tokens"] == STEPS


def test_streamed_chat_carries_each_chunks_logprobs(client, server, reference) -> None:
    stream = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=STEPS, logprobs=True, top_logprobs=TOP, stream=True
    )
    entries, pages = [], None
    for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs is not None:
                entries += choice.logprobs.content
            if choice.finish_reason is not None:
                pages = chunk.ocr_pages
    reference.check_entries(entries)
    assert pages is not None and pages[0]["confidence"]["tokens"] == STEPS


def test_completions_legacy_logprobs_from_token_ids(client, server, reference, prompt_ids) -> None:
    reply = client.completions.create(
        model=server.model, prompt=prompt_ids, max_tokens=STEPS, temperature=0, logprobs=TOP
    )
    logprobs = reply.choices[0].logprobs
    texts = [reference.texts(token)[0] for token in reference.ids]
    assert logprobs.tokens == texts
    assert logprobs.token_logprobs == pytest.approx(reference.logprobs, abs=TOLERANCE)
    for top, chosen, expected in zip(logprobs.top_logprobs, texts, reference.top, strict=True):
        assert chosen in top and set(top) <= {chosen, *(reference.texts(i)[0] for i, _ in expected)}
    text = reply.choices[0].text
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    # each token's text where its offset says (but bytes of a character split over tokens, whose text is U+FFFD,
    # and the token after one that never completed: the random model writes invalid UTF-8, which reads as U+FFFD)
    previous = ""
    for token, offset in zip(logprobs.tokens, logprobs.text_offset, strict=True):
        assert "\ufffd" in token + previous or text[offset:].startswith(token), (token, offset, text)
        previous = token
    text_prompt = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=STEPS)
    assert reply.choices[0].text == text_prompt.choices[0].text  # ids and their text: the same prompt


def test_streamed_completions_keep_their_text_offsets(client, server, reference) -> None:
    whole = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=STEPS, logprobs=TOP)
    stream = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=STEPS, logprobs=TOP, stream=True)
    tokens, offsets = [], []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs is not None:
                tokens += choice.logprobs.tokens
                offsets += choice.logprobs.text_offset
    assert (tokens, offsets) == (whole.choices[0].logprobs.tokens, whole.choices[0].logprobs.text_offset)


def test_responses_include_logprobs(client, server, reference) -> None:
    response = client.responses.create(
        model=server.model,
        input=PROMPT,
        max_output_tokens=STEPS,
        include=["message.output_text.logprobs"],
        top_logprobs=TOP,
    )
    reference.check_entries(response.output[0].content[0].logprobs)
    assert response.top_logprobs == TOP
    assert response.model_extra["ocr_pages"][0]["confidence"]["tokens"] == STEPS
    plain = client.responses.create(model=server.model, input=PROMPT, max_output_tokens=STEPS)
    assert plain.output[0].content[0].logprobs == []


def test_streamed_responses_carry_logprobs_per_delta(client, server, reference) -> None:
    deltas, done = [], None
    with client.responses.stream(
        model=server.model,
        input=PROMPT,
        max_output_tokens=STEPS,
        include=["message.output_text.logprobs"],
        top_logprobs=TOP,
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas += event.logprobs
            elif event.type == "response.output_text.done":
                done = event.logprobs
    assert [(d.token, d.logprob) for d in deltas] == [(d.token, d.logprob) for d in done]
    assert [d.token for d in deltas] == [reference.texts(token)[0] for token in reference.ids]
    assert [d.logprob for d in deltas] == pytest.approx(reference.logprobs, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ({"chat": {"top_logprobs": 2}}, "top_logprobs"),
        ({"chat": {"logprobs": True, "top_logprobs": 21}}, "top_logprobs"),
        ({"completions": {"logprobs": 21}}, "logprobs"),
        ({"completions": {"logprobs": 1, "echo": True}}, "logprobs"),
        ({"completions": {"prompt": [[1, 2], [3, 4]]}}, "prompt"),
        ({"completions": {"prompt": [1, 10**9]}}, "prompt"),
        ({"responses": {"include": ["file_search_call.results"]}}, "include"),
        ({"responses": {"top_logprobs": -1}}, "top_logprobs"),
    ],
)
def test_bad_logprob_and_prompt_fields_are_400s_naming_them(server, call: dict, param: str) -> None:
    ((endpoint, fields),) = call.items()
    body = {"model": server.model, "max_tokens": 2, **fields}
    if endpoint == "chat":
        body["messages"] = MESSAGES
    elif endpoint == "completions":
        body.setdefault("prompt", PROMPT)
    else:
        body = {"model": server.model, "input": PROMPT, **fields}
    path = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses"}[endpoint]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        reply = http.post(path, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"].startswith(param), reply.json()


def test_a_logit_bias_of_minus_100_removes_the_greedy_token(client, server, reference) -> None:
    """The first greedy token (known from the model itself) never appears once biased away (told by its bytes:
    the texts of tokens that split a character are all U+FFFD)."""
    banned = reference.ids[0]
    reply = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=STEPS, logprobs=True, logit_bias={str(banned): -100}
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == STEPS and reference.texts(banned)[1] not in [entry.bytes for entry in content]
    # the figures stay the model's own: the token now first is less likely than the banned one was
    assert content[0].logprob < reference.logprobs[0]

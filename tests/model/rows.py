"""Submitting rows to a real engine and collecting what its scheduler says of them, for the engine tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from ocr_engine.engine import OcrEngine
from ocr_engine.models.base import ModelAdapter, PreparedSequence
from ocr_engine.request import SamplingParams
from ocr_engine.results import TokenLogprob
from ocr_engine.rows import Row, RowEnd

WAIT_S = 120.0


class EventLog:
    """Every sink's news in the order the model thread gave it: (what, name)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, what: str, name: str) -> None:
        with self.lock:
            self.events.append((what, name))

    def snapshot(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.events)


class Collect:
    """A RowSink that keeps a row's tokens and its end, and lets a test wait for either."""

    def __init__(self, name: str = "", log: EventLog | None = None, stop_after: int | None = None) -> None:
        self.name, self.log, self.stop_after = name, log, stop_after
        self.ids: list[int] = []
        self.logprobs: list[TokenLogprob] = []
        self.end: RowEnd | None = None
        self.error: BaseException | None = None
        self.changed = threading.Condition()

    def _note(self, what: str) -> None:
        if self.log is not None:
            self.log.add(what, self.name)

    def admitted(self, row: Row) -> None:
        self._note("admitted")

    def tokens(self, row: Row, tokens: list[TokenLogprob]) -> None:
        with self.changed:
            self.ids += [token.token_id for token in tokens]
            self.logprobs += tokens
            if self.stop_after is not None and len(self.ids) >= self.stop_after:
                row.stop()
            self.changed.notify_all()

    def finished(self, row: Row, reason: RowEnd) -> None:
        self._note("finished")
        with self.changed:
            self.end = reason
            self.changed.notify_all()

    def failed(self, row: Row, error: BaseException) -> None:
        self._note("failed")
        with self.changed:
            self.error = error
            self.changed.notify_all()

    def wait_for(self, done: Callable[[Collect], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: done(self) or self.error is not None, WAIT_S), "the row stalled"
        if self.error is not None:
            raise self.error

    def result(self) -> tuple[list[int], RowEnd]:
        self.wait_for(lambda sink: sink.end is not None)
        assert self.end is not None
        return self.ids, self.end


def submit(engine: OcrEngine, sequence: PreparedSequence, params: SamplingParams, sink: Collect, **kw) -> Row:
    return engine.submit(sequence, params, sink, **kw)


def generate(engine: OcrEngine, sequences: list[PreparedSequence], params: SamplingParams) -> list[list[int]]:
    """Every sequence submitted at once; their tokens."""
    sinks = [Collect() for _ in sequences]
    for sequence, sink in zip(sequences, sinks, strict=True):
        submit(engine, sequence, params, sink)
    return [sink.result()[0] for sink in sinks]


def model_logprobs(adapter: ModelAdapter, sequence: PreparedSequence, generated: list[int]) -> torch.Tensor:
    """log-softmax of the logits one uncached forward over the prompt and `generated` gives at each generated
    token's position: row i is the distribution token i was drawn from."""
    with torch.inference_mode():
        prompt = adapter.embed(sequence)
        embeds = torch.cat([prompt, adapter.decoder.embed_tokens(torch.tensor(generated, device=prompt.device))])
        hidden = adapter.decoder(inputs_embeds=embeds[None]).last_hidden_state[0]
        logits = adapter.lm_head(hidden[len(prompt) - 1 : len(prompt) - 1 + len(generated)]).float()
    return logits.log_softmax(dim=-1)

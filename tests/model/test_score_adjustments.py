"""Penalties, logit_bias, min_tokens and ignore_eos through the real scheduler on a tiny checkpoint: each moves the
tokens the way its definition says (counted on token ids), and only on its own row of the running batch."""

from __future__ import annotations

from collections import Counter

import pytest

from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.request import SamplingParams
from ocr_engine.scheduler import SchedulerLimits
from tests.model.rows import Collect, generate, submit

TOKENS = 40


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint):
    return load_adapter(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def engine(adapter):
    # no n-gram guard in the way: the penalties alone decide repetition
    engine = OcrEngine(adapter, limits=SchedulerLimits(max_num_seqs=4), ngram_size=1000, window_size=1000)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def prompt(adapter):
    return adapter.prepare("The quick brown fox jumps over the lazy dog. Table of contents", None, "gundam")


def run(engine: OcrEngine, prompt, **params) -> list[int]:
    return generate(engine, [prompt], SamplingParams(max_tokens=TOKENS, **params))[0]


def most_repeated(ids: list[int]) -> int:
    return max(Counter(ids).values())


@pytest.fixture(scope="module")
def plain(engine, prompt) -> list[int]:
    ids = run(engine, prompt)
    assert len(ids) == TOKENS and most_repeated(ids) > 1, "the tiny model repeats itself without a penalty"
    return ids


@pytest.mark.parametrize("params", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"repetition_penalty": 2.0}])
def test_penalties_make_fewer_repeats(engine, prompt, plain, params) -> None:
    penalized = run(engine, prompt, **params)
    assert most_repeated(penalized) < most_repeated(plain)
    assert len(set(penalized)) > len(set(plain))


def test_a_negative_frequency_penalty_makes_more_repeats(engine, prompt, plain) -> None:
    assert most_repeated(run(engine, prompt, frequency_penalty=-2.0)) > most_repeated(plain)


def test_logit_bias_of_minus_100_removes_the_greedy_token(engine, prompt, plain) -> None:
    banned = plain[0]
    assert banned not in run(engine, prompt, logit_bias={banned: -100.0})


def test_min_tokens_and_ignore_eos_hold_the_end_off(engine, prompt, adapter) -> None:
    eos_first = {adapter.eos_token_id: 100.0}
    sinks = {name: Collect(name) for name in ("eos", "min", "ignore")}
    submit(engine, prompt, SamplingParams(max_tokens=TOKENS, logit_bias=eos_first), sinks["eos"])
    submit(engine, prompt, SamplingParams(max_tokens=TOKENS, logit_bias=eos_first, min_tokens=5), sinks["min"])
    submit(engine, prompt, SamplingParams(max_tokens=8, logit_bias=eos_first, ignore_eos=True), sinks["ignore"])
    ends = {name: sink.result() for name, sink in sinks.items()}
    assert ends["eos"] == ([], "stop")
    assert len(ends["min"][0]) == 5 and ends["min"][1] == "stop"
    assert len(ends["ignore"][0]) == 8 and ends["ignore"][1] == "length"


def test_a_penalized_row_leaves_the_rows_beside_it_as_they_were(engine, prompt, plain) -> None:
    sinks = [Collect("plain"), Collect("penalized")]
    submit(engine, prompt, SamplingParams(max_tokens=TOKENS), sinks[0])
    submit(engine, prompt, SamplingParams(max_tokens=TOKENS, frequency_penalty=2.0), sinks[1])
    assert sinks[0].result()[0] == plain
    assert sinks[1].result()[0] == run(engine, prompt, frequency_penalty=2.0)

"""The score adjustments against their definitions, on hand-made scores."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ocr_engine.logits import adjust_scores
from ocr_engine.models.base import PreparedSequence
from ocr_engine.request import SamplingParams
from ocr_engine.results import TokenLogprob
from ocr_engine.rows import Row

EOS = 0


class Sink:
    def admitted(self, row: Row) -> None: ...
    def tokens(self, row: Row, tokens: list[TokenLogprob]) -> None: ...
    def finished(self, row: Row, reason: str) -> None: ...
    def failed(self, row: Row, error: BaseException) -> None: ...


def row(params: SamplingParams, prompt: tuple[int, ...] = (), output: tuple[int, ...] = ()) -> Row:
    made = Row(sequence=PreparedSequence(input_ids=list(prompt)), params=params, budget=100, sink=Sink())
    made.output_counts = Counter(output)
    made.generated = len(output)
    return made


def adjusted(params: SamplingParams, scores: list[float], **history: tuple[int, ...]) -> list[float]:
    tensor = torch.tensor([scores])
    return adjust_scores(tensor, [row(params, **history)], EOS)[0].tolist()


def test_untouched_without_settings() -> None:
    scores = torch.tensor([[1.0, -2.0, 3.0]])
    assert adjust_scores(scores.clone(), [row(SamplingParams(), output=(1, 1))], EOS).equal(scores)


def test_frequency_and_presence_penalties_subtract_per_occurrence_and_once() -> None:
    params = SamplingParams(frequency_penalty=0.5, presence_penalty=0.25)
    assert adjusted(params, [1.0, 1.0, 1.0, 1.0], output=(2, 2, 2, 3)) == [1.0, 1.0, 1.0 - 1.5 - 0.25, 1.0 - 0.75]


def test_negative_frequency_penalty_rewards_repeats() -> None:
    assert adjusted(SamplingParams(frequency_penalty=-1.0), [0.0, 0.0, 0.0], output=(1, 1)) == [0.0, 2.0, 0.0]


def test_repetition_penalty_divides_positive_and_multiplies_negative_scores_of_prompt_and_output() -> None:
    params = SamplingParams(repetition_penalty=2.0)
    assert adjusted(params, [4.0, 4.0, -4.0, 4.0], prompt=(1,), output=(2,)) == [4.0, 2.0, -8.0, 4.0]


@pytest.mark.parametrize("penalty", [5e-324, 1e-300, 1e300])
def test_an_extreme_repetition_penalty_leaves_scores_samplable(penalty: float) -> None:
    """A penalty the schema allows (any > 0) must not overflow the scores into what softmax makes NaN."""
    scores = adjusted(SamplingParams(repetition_penalty=penalty, temperature=2.0), [4.0, 3.0, -1.0], output=(0, 2))
    probabilities = torch.softmax(torch.tensor(scores) / 2.0, dim=-1)
    assert torch.isfinite(probabilities).all() and abs(float(probabilities.sum()) - 1.0) < 1e-6


def test_logit_bias_adds_to_its_tokens() -> None:
    assert adjusted(SamplingParams(logit_bias={1: -100.0, 2: 5.0}), [0.0, 1.0, 1.0]) == [0.0, -99.0, 6.0]


@pytest.mark.parametrize(
    ("params", "generated", "eos_allowed"),
    [
        (SamplingParams(min_tokens=3), 2, False),
        (SamplingParams(min_tokens=3), 3, True),
        (SamplingParams(ignore_eos=True), 50, False),
    ],
)
def test_end_of_sequence_kept_out(params: SamplingParams, generated: int, eos_allowed: bool) -> None:
    scores = adjusted(params, [5.0, 1.0], output=(1,) * generated)
    assert (scores[EOS] == 5.0) is eos_allowed and (scores[EOS] == float("-inf")) is not eos_allowed

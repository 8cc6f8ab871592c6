import pytest
import torch

from ocr_engine.request import SamplingParams
from ocr_engine.sampling import make_generator, sample_next, sample_rows


def test_greedy_and_nucleus():
    scores = torch.tensor([[0.0, 5.0, 4.9, -3.0]])
    assert sample_next(scores, SamplingParams(), None).tolist() == [1]
    params = SamplingParams(temperature=1.0, top_p=0.5, seed=1)
    generator = make_generator(params, torch.device("cpu"))
    picks = {sample_next(scores, params, generator).item() for _ in range(50)}
    assert picks == {1}
    wide = SamplingParams(temperature=1.0, top_p=1.0, seed=1)
    generator = make_generator(wide, torch.device("cpu"))
    assert {sample_next(scores, wide, generator).item() for _ in range(200)} >= {1, 2}


def test_near_zero_temperatures_are_greedy():
    scores = torch.tensor([[0.0, 5.0, 4.9, -3.0]])
    for temperature in (1e-300, 2.6e-188, 1e-6):
        params = SamplingParams(temperature=temperature, seed=3)
        assert make_generator(params, torch.device("cpu")) is None
        assert sample_next(scores, params, None).tolist() == [1]


@pytest.mark.parametrize("top_p", [0.0, 1e-9, 1.0])
def test_top_p_at_its_bounds_samples_valid_tokens(top_p):
    scores = torch.tensor([[0.0, 5.0, 4.9, float("-inf")]])
    params = SamplingParams(temperature=1.0, top_p=top_p, seed=1)
    generator = make_generator(params, torch.device("cpu"))
    picks = {sample_next(scores, params, generator).item() for _ in range(100)}
    assert picks <= {0, 1, 2} and (picks == {1} if top_p < 0.5 else len(picks) > 1)


def test_rows_sample_with_their_own_settings_and_generators():
    scores = torch.tensor([[0.0, 5.0, 4.9, -3.0]] * 3)
    sampled = SamplingParams(temperature=1.0, seed=5)
    params = [SamplingParams(), sampled, SamplingParams()]
    first = sample_rows(scores, params, [None, make_generator(sampled, torch.device("cpu"), 2), None]).tolist()
    again = sample_rows(scores[1:2], [sampled], [make_generator(sampled, torch.device("cpu"), 2)]).tolist()
    assert first[0] == first[2] == 1 and first[1] == again[0]


def test_pages_of_a_seeded_job_draw_from_different_streams():
    params = SamplingParams(temperature=1.0, seed=5)
    draws = [torch.rand(4, generator=make_generator(params, torch.device("cpu"), page)).tolist() for page in (0, 1)]
    assert draws[0] != draws[1]

import torch

from ocr_engine.request import SamplingParams
from ocr_engine.sampling import make_generator, sample_next


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

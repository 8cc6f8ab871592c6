"""Log probabilities of the sampled tokens under the model's own scores (vLLM's default, `raw_logprobs`): the
log-softmax of the logits before penalties, biases, the repetition guard and temperature.

Every row's chosen token gets one (the pages' confidence is made of them): one reduction over the batch's scores
per step. The most likely alternatives cost a top-k, paid only by the rows that ask for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ocr_engine.results import TokenLogprob
from ocr_engine.rows import Row


def token_logprobs(logits: torch.Tensor, picked: torch.Tensor, rows: Sequence[Row]) -> list[TokenLogprob]:
    """`picked[i]`, the token row i sampled from `logits[i]` (the model's raw scores, (B, V)), with its log
    probability and, if the row asks for `logprobs: k`, the k most likely tokens with theirs."""
    scores = logits.float()
    norm = scores.logsumexp(dim=-1)
    chosen = scores.gather(1, picked[:, None]).squeeze(1) - norm
    # one copy to the host for tokens and figures both (a token id is exact in float64)
    pairs = torch.stack((picked.to(torch.float64), chosen.to(torch.float64)), dim=1).tolist()
    asking = [index for index, row in enumerate(rows) if row.params.logprobs]
    top: dict[int, tuple[tuple[int, float], ...]] = {}
    if asking:
        wanted = [rows[index].params.logprobs or 0 for index in asking]
        selected = torch.tensor(asking, device=scores.device)
        values, ids = scores[selected].topk(min(max(wanted), scores.shape[-1]), dim=-1)  # the same order
        values = values - norm[selected, None]
        for index, count, row_values, row_ids in zip(asking, wanted, values.tolist(), ids.tolist(), strict=True):
            top[index] = tuple(zip(row_ids[:count], row_values[:count], strict=True))
    return [TokenLogprob(int(token), logprob, top.get(index, ())) for index, (token, logprob) in enumerate(pairs)]

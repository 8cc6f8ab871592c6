"""Per-row score adjustments before sampling, as OpenAI and vLLM define them: `min_tokens` and `ignore_eos` keep
the end-of-sequence token out, `logit_bias` adds to chosen tokens, the repetition penalty (vLLM's multiplicative
form) discounts tokens of the prompt and the output, and the frequency and presence penalties (OpenAI's) subtract
per occurrence in the output and once per token that occurred.

A batch where no row sets any of them is not touched, so the usual request pays nothing; a batch where one does
pays a copy of its scores and a few small indexed updates per adjusting row per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ocr_engine.rows import Row


def adjust_scores(scores: torch.Tensor, rows: Sequence[Row], eos_token_id: int | None) -> torch.Tensor:
    """`scores` (B, V), one row per entry of `rows`, adjusted for the rows that ask for it: a copy when one
    does, so `scores` stay what the model said (the tokens' log probabilities are taken from them)."""
    adjusting = [index for index, row in enumerate(rows) if row.params.adjusts_scores]
    if adjusting:
        scores = scores.clone()
    for index in adjusting:
        _adjust_row(scores[index], rows[index], eos_token_id)
    return scores


def _ids(ids: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.long, device=device)


def _adjust_row(score: torch.Tensor, row: Row, eos_token_id: int | None) -> None:
    params, counts, device = row.params, row.output_counts, score.device
    if eos_token_id is not None and (params.ignore_eos or row.generated < params.min_tokens):
        score[eos_token_id] = -torch.inf
    if params.logit_bias:
        ids = _ids(list(params.logit_bias), device)
        score[ids] += torch.tensor(list(params.logit_bias.values()), dtype=score.dtype, device=device)
    if params.repetition_penalty != 1.0:
        ids = _ids(sorted(set(row.sequence.input_ids) | counts.keys()), device)
        seen = score[ids]
        penalty = params.repetition_penalty
        score[ids] = torch.where(seen > 0, seen / penalty, seen * penalty)
        # a penalty near 0 (or a huge one) overflows: keep the scores finite, or sampling would see NaNs
        score.nan_to_num_(nan=-torch.inf, posinf=torch.finfo(score.dtype).max, neginf=-torch.inf)
    if counts and (params.frequency_penalty or params.presence_penalty):
        ids = _ids(list(counts), device)
        occurrences = torch.tensor(list(counts.values()), dtype=score.dtype, device=device)
        score[ids] -= params.frequency_penalty * occurrences + params.presence_penalty

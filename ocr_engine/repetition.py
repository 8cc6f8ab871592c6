"""Windowed no-repeat-n-gram guard: stops DeepSeek-OCR from looping on a line or table row forever."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import LogitsProcessor


class NoRepeatNGramGuard(LogitsProcessor):
    """Bans any token that would repeat an n-gram seen among the last `window_size` generated tokens.

    If the last `ngram_size - 1` tokens also occur earlier in the window followed by token t, t gets -inf,
    unless it is exempt. The defaults are DeepSeek's (they use n=20..30 over a window of 50..90 and exempt
    `<td>` / `</td>`, which legitimately repeat in tables). `input_ids` must hold only generated tokens, not
    the prompt, so the page's own instruction never counts as a repetition. Rows of a batch that have generated
    fewer tokens than the window holds are padded on the left with a negative id: it never equals a token, so
    no n-gram reaching into the padding ever matches, and each row is guarded exactly as it would be alone.
    Work per step is O(B * window * n) on the scores' device, independent of the sequence length.
    """

    def __init__(self, ngram_size: int = 30, window_size: int = 90, exempt_token_ids: Iterable[int] = ()) -> None:
        if ngram_size < 1 or window_size < 1:
            raise ValueError(f"ngram_size and window_size must be >= 1, got {ngram_size} and {window_size}")
        self.ngram_size = ngram_size
        self.window_size = window_size
        self.exempt_token_ids = tuple(sorted(set(exempt_token_ids)))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = self.ngram_size
        window = input_ids[:, -self.window_size :]
        if window.shape[1] < n:
            return scores
        ngrams = window.unfold(1, n, 1)  # (B, K, n): every n-gram that lies inside the window
        prefix = window[:, window.shape[1] - n + 1 :].unsqueeze(1)  # (B, 1, n-1): the n-gram being completed
        rows, starts = (ngrams[:, :, :-1] == prefix).all(dim=2).nonzero(as_tuple=True)
        tokens = ngrams[rows, starts, -1]
        rows, tokens = rows[tokens >= 0], tokens[tokens >= 0]  # padding against padding bans nothing
        if rows.numel() == 0:
            return scores
        banned = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        banned[rows.to(scores.device), tokens.to(scores.device)] = True
        exempt = [t for t in self.exempt_token_ids if t < scores.shape[1]]
        banned[:, exempt] = False
        return scores.masked_fill(banned, float("-inf"))

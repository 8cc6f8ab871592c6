"""The windowed no-repeat-n-gram guard."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessorList

from ocr_engine.repetition import NoRepeatNGramGuard

VOCAB = 8
NEG_INF = float("-inf")


def _banned(guard: NoRepeatNGramGuard, rows: list[list[int]]) -> list[list[int]]:
    scores = guard(torch.tensor(rows), torch.zeros(len(rows), VOCAB))
    return [torch.nonzero(row == NEG_INF).flatten().tolist() for row in scores]


def test_bans_the_token_that_continues_a_repeated_ngram() -> None:
    guard = NoRepeatNGramGuard(ngram_size=3, window_size=10)
    assert _banned(guard, [[1, 2, 3, 4, 1, 2]]) == [[3]]
    assert _banned(guard, [[1, 2, 3, 1, 2, 5, 1, 2]]) == [[3, 5]]


def test_no_ban_without_repetition_or_when_too_short() -> None:
    guard = NoRepeatNGramGuard(ngram_size=3, window_size=10)
    assert _banned(guard, [[1, 2, 3, 4, 5, 6]]) == [[]]
    assert _banned(guard, [[1, 2]]) == [[]]


def test_exempt_tokens_stay_allowed() -> None:
    guard = NoRepeatNGramGuard(ngram_size=2, window_size=10, exempt_token_ids=[6, 100])
    assert _banned(guard, [[5, 6, 7, 5, 3, 5]]) == [[3]]


def test_tokens_outside_the_window_do_not_count() -> None:
    rows = [[1, 2, 3, 0, 0, 0, 1, 2]]
    assert _banned(NoRepeatNGramGuard(ngram_size=3, window_size=5), rows) == [[]]
    assert _banned(NoRepeatNGramGuard(ngram_size=3, window_size=7), rows) == [[]]
    assert _banned(NoRepeatNGramGuard(ngram_size=3, window_size=8), rows) == [[3]]


def test_batch_rows_are_independent() -> None:
    guard = NoRepeatNGramGuard(ngram_size=2, window_size=10)
    assert _banned(guard, [[4, 5, 4], [4, 6, 4], [1, 2, 3]]) == [[5], [6], []]


def test_scores_of_allowed_tokens_are_unchanged() -> None:
    guard = NoRepeatNGramGuard(ngram_size=2, window_size=10)
    scores = torch.arange(VOCAB, dtype=torch.float32).unsqueeze(0)
    out = guard(torch.tensor([[2, 3, 2]]), scores)
    assert out.tolist() == [[0.0, 1.0, 2.0, NEG_INF, 4.0, 5.0, 6.0, 7.0]]
    assert scores.tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]


def test_long_batch_uses_only_the_window() -> None:
    guard = NoRepeatNGramGuard(ngram_size=30, window_size=90)
    # Every row repeats itself every 1000 tokens: far outside the window, so nothing is banned there.
    ids = torch.arange(16 * 8192).reshape(16, 8192) % 1000
    ids[3, -60:-30] = torch.cat([ids[3, -29:], torch.tensor([999])])  # row 3: last 29 tokens seen before 999
    scores = guard(ids, torch.zeros(16, 1000))
    assert torch.nonzero(scores == NEG_INF).tolist() == [[3, 999]]


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="ngram_size"):
        NoRepeatNGramGuard(ngram_size=0)


def _greedy(processors: LogitsProcessorList, steps: int) -> list[int]:
    """Greedy decoding on a fixed table: each token prefers the next one in a 5-cycle, then EOS (5)."""
    table = torch.zeros(VOCAB, VOCAB)
    for token in range(5):
        table[token, (token + 1) % 5] = 2.0
        table[token, 5] = 1.0
    ids = [0]
    while len(ids) < steps and ids[-1] != 5:
        scores = processors(torch.tensor([ids]), table[ids[-1]].unsqueeze(0).clone())
        ids.append(int(scores.argmax()))
    return ids


def test_greedy_loop_is_broken() -> None:
    assert _greedy(LogitsProcessorList(), 20) == [0, 1, 2, 3, 4] * 4
    guard = NoRepeatNGramGuard(ngram_size=3, window_size=90)
    assert _greedy(LogitsProcessorList([guard]), 20) == [0, 1, 2, 3, 4, 0, 1, 5]


def test_rows_padded_with_a_negative_id_are_guarded_as_alone() -> None:
    """The running batch pads short histories on the left with -1 to the window's width: every row must be
    banned exactly what its own unpadded history bans."""
    guard = NoRepeatNGramGuard(ngram_size=3, window_size=10)
    histories = [[1, 2, 3, 4, 1, 2], [1, 2], [5, 1, 5, 1, 5], [1, 2, 3, 1, 2, 5, 1, 2, 6, 1], []]
    padded = [[-1] * (10 - len(history)) + history for history in histories]
    alone = [_banned(guard, [history])[0] if history else [] for history in histories]
    assert _banned(guard, padded) == alone

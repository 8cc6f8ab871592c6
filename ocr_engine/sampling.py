"""Turn next-token scores into tokens: greedy, or temperature + nucleus sampling from a seeded generator.

Every row of the running batch samples with its own settings and its own generator, so a seeded page gives the
same text whatever else is decoding beside it.
"""

from __future__ import annotations

import torch

from ocr_engine.request import SamplingParams

_SEED_SPACING = 1_000_003  # page k of a job seeded `s` draws from seed s·spacing + k


def make_generator(params: SamplingParams, device: torch.device, page: int = 0) -> torch.Generator | None:
    """A private generator per page of a job: with a seed, page k's draws are the same however its job's pages
    interleave with other work."""
    if params.greedy:
        return None
    generator = torch.Generator(device=device)
    if params.seed is None:
        generator.seed()
    else:
        generator.manual_seed((params.seed * _SEED_SPACING + page) % 2**63)
    return generator


def sample_next(scores: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    """Pick one token per row from float scores of shape (B, V), all rows with the same settings."""
    if params.greedy:
        return scores.argmax(dim=-1)
    probs = torch.softmax(scores / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p  # the most likely token always stays
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    if generator is not None and generator.device != probs.device:  # the model moved to another device mid-job
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_rows(
    scores: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> torch.Tensor:
    """One token per row of (B, V) scores, each row with its own settings and generator."""
    tokens = scores.argmax(dim=-1)
    for row, (settings, generator) in enumerate(zip(params, generators, strict=True)):
        if not settings.greedy:
            tokens[row] = sample_next(scores[row : row + 1], settings, generator)[0]
    return tokens

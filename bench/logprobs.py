"""What log probabilities cost the running batch: decode tok/s with `logprobs` off against on, side by side.

Every sampled token gets its own log probability (the pages' confidence is made of them), so "off" still pays
one log-sum-exp over each step's scores; "on" adds the top-`--top` alternatives for every row. Runs the
full-size random DeepSeek-OCR-2 (or `--tiny`) with `--count` staggered text-only rows, off and on side by side
`--rounds` times (their order swapped every round, so a drift of the machine's speed cancels), and prints the
median tok/s of each and the median of the rounds' on/off ratios. It also times the figures alone on scores of
the same shape, as a share of a decode step: the always-on part, and what asking adds. Targets: off costs
nothing measurable (its share of a step < 1%); on costs <= 10%.

    python bench/logprobs.py [--tiny] [--device cpu] [--count 16] [--rounds 3] [--steps 24] [--top 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from contextlib import ExitStack

import torch
from common import verdict
from engine import ENDLESS, add_model_flags, bench_adapter, measure, random_prompts

from ocr_engine.engine import OcrEngine
from ocr_engine.models.base import PreparedSequence
from ocr_engine.request import SamplingParams
from ocr_engine.rows import Row
from ocr_engine.scheduler import SchedulerLimits
from ocr_engine.token_logprobs import token_logprobs


def figures_seconds(vocab: int, count: int, device: str, params: SamplingParams, repeats: int = 50) -> float:
    """Seconds per step of `token_logprobs` for `count` rows with `params`, on random float scores."""
    logits = torch.randn(count, vocab, device=device)
    picked = logits.argmax(dim=-1)
    row = Row(sequence=PreparedSequence(input_ids=[]), params=params, budget=1, sink=None)  # type: ignore[arg-type]
    rows = [row] * count
    token_logprobs(logits, picked, rows)
    started = time.perf_counter()
    for _ in range(repeats):
        token_logprobs(logits, picked, rows)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(parser)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    asking = SamplingParams(max_tokens=ENDLESS.max_tokens, logprobs=args.top)

    with ExitStack() as stack:
        adapter = bench_adapter(stack, args)
        engine = OcrEngine(adapter, limits=SchedulerLimits(max_num_seqs=args.count, interactive_reserve=0))
        rng = random.Random(0)
        print(f"device {args.device}, dtype {args.dtype}; {args.count} rows, prompts of {args.prompt_tokens} tokens")
        measure(engine, random_prompts(adapter, rng, 2, args.prompt_tokens), 4, staggered=True)  # warm-up
        off, on = [], []
        for round_number in range(args.rounds):
            order = ((ENDLESS, off), (asking, on))
            for params, figures in order if round_number % 2 == 0 else order[::-1]:
                prompts = random_prompts(adapter, rng, args.count, args.prompt_tokens)
                figures.append(measure(engine, prompts, args.steps, staggered=True, params=params))
            print(f"  round {round_number + 1}: off {off[-1]:.1f} tok/s, on {on[-1]:.1f} tok/s", flush=True)
        engine.close()
        step_s = args.count / statistics.median(off)
        vocab = adapter.decoder.config.vocab_size  # the model's (the tokenizer is the tiny checkpoint's)
        always = figures_seconds(vocab, args.count, args.device, ENDLESS) / step_s
        added = figures_seconds(vocab, args.count, args.device, asking) / step_s - always

    ratio = statistics.median(o / f for o, f in zip(on, off, strict=True))
    print()
    print("| logprobs | decode tok/s (median) | × off (median of the rounds) |")
    print("|---|---:|---:|")
    print(f"| off | {statistics.median(off):.1f} | 1.00 |")
    print(f"| on, top {args.top} | {statistics.median(on):.1f} | {ratio:.2f} |")
    print(f"share of a decode step: always-on figures {always:.2%}, top {args.top} for every row {added:.2%} more")
    verdict(always < 0.01, f"off: the always-on figures take {always:.2%} of a step (< 1%)")
    verdict(ratio >= 0.90, f"on: {1 - ratio:.1%} slower than off (<= 10%)")


if __name__ == "__main__":
    main()

"""What log probabilities cost the running batch: decode tok/s with `logprobs` off against on, side by side.

Every sampled token gets its own log probability (the pages' confidence is made of them), so "off" still pays
one log-sum-exp over each step's scores; "on" adds the top-`--top` alternatives for every row. Runs the
full-size random DeepSeek-OCR-2 (or `--tiny`) with `--count` staggered text-only rows, alternating off and on
`--rounds` times, and prints the median tok/s of each and the ratio. It also times the always-on part alone on
scores of the same shape, as a share of a decode step. Targets: off costs nothing measurable (its share of a
step < 1%); on costs <= 10%.

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


def always_on_seconds(vocab: int, count: int, device: str, repeats: int = 50) -> float:
    """Seconds per step of the figures every row gets (chosen token only), on random float scores."""
    logits = torch.randn(count, vocab, device=device)
    picked = logits.argmax(dim=-1)
    rows = [Row(sequence=PreparedSequence(input_ids=[]), params=ENDLESS, budget=1, sink=None)] * count  # type: ignore[arg-type]
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
            for params, figures in ((ENDLESS, off), (asking, on)):
                prompts = random_prompts(adapter, rng, args.count, args.prompt_tokens)
                figures.append(measure(engine, prompts, args.steps, staggered=True, params=params))
            print(f"  round {round_number + 1}: off {off[-1]:.1f} tok/s, on {on[-1]:.1f} tok/s", flush=True)
        engine.close()
        share = always_on_seconds(len(adapter.tokenizer), args.count, args.device) * statistics.median(off) / args.count

    off_median, on_median = statistics.median(off), statistics.median(on)
    cost = 1 - on_median / off_median
    print()
    print("| logprobs | decode tok/s (median) | × off |")
    print("|---|---:|---:|")
    print(f"| off | {off_median:.1f} | 1.00 |")
    print(f"| on, top {args.top} | {on_median:.1f} | {on_median / off_median:.2f} |")
    print(f"always-on figures (chosen tokens only): {share:.2%} of a decode step")
    verdict(share < 0.01, f"off: the always-on figures take {share:.2%} of a step (< 1%)")
    verdict(cost <= 0.10, f"on: {cost:.1%} slower than off (<= 10%)")


if __name__ == "__main__":
    main()

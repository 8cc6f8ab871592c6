"""Aggregate decode throughput of the running batch with 1, 4 and 16 sequences that arrive at different times.

Builds DeepSeek-OCR-2 with random weights in the published shapes (`--shapes`, default
shared/reference/deepseek-ocr-2-full-shapes.json beside the repository: 3.39 B parameters, the same compute as
the real model) or, with `--tiny`, the tiny test checkpoint; the tokenizer and geometry come from the tiny
checkpoint. Rows are text-only (`--prompt-tokens` random prompt ids, EOS ignored) submitted straight to the
engine's scheduler, so prefill and decode are all that is measured.

For each C: row i+1 is submitted once row i has its first token (arrivals at different steps, so the rows'
cached lengths differ as in real traffic); once all C decode, tokens are counted over `--steps` decode steps
and the rows are cancelled. The same C rows submitted at once (a static batch) are measured beside it. Every
count is measured once per round, `--rounds` rounds (this machine's speed drifts: a round's ratios are measured
side by side); prints the median tok/s of each C and the median of the rounds' ratios to C=1:
C | staggered tok/s | × C=1 | static tok/s | × C=1. Target: >= 3.5× at 16 for the staggered rows.

    python bench/engine.py [--tiny] [--device cpu] [--counts 1,4,16] [--rounds 3] [--steps 24] [--prompt-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from common import tiny_checkpoint, verdict

from ocr_engine.engine import OcrEngine
from ocr_engine.image_tokens import ImageGeometry
from ocr_engine.models.base import PreparedSequence
from ocr_engine.models.deepseek_ocr2 import DeepseekOcr2Adapter
from ocr_engine.models.loading import load_adapter
from ocr_engine.request import SamplingParams
from ocr_engine.results import TokenLogprob
from ocr_engine.rows import Row, RowEnd
from ocr_engine.scheduler import SchedulerLimits

SHAPES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "deepseek-ocr-2-full-shapes.json"


class Timed:
    """A row sink that stamps every token."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.first = threading.Event()
        self.ended = threading.Event()

    def admitted(self, row: Row) -> None:
        pass

    def tokens(self, row: Row, tokens: list[TokenLogprob]) -> None:
        self.stamps.extend([time.perf_counter()] * len(tokens))
        self.first.set()

    def finished(self, row: Row, reason: RowEnd) -> None:
        self.ended.set()

    def failed(self, row: Row, error: BaseException) -> None:
        print(f"a row failed: {error!r}")
        self.ended.set()
        self.first.set()


def full_size_adapter(tiny: str, shapes: Path, device: torch.device, dtype: torch.dtype) -> DeepseekOcr2Adapter:
    from transformers import AutoProcessor, DeepseekOcr2Config, DeepseekOcr2ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny, backend="pil")
    raw = json.loads((Path(tiny) / "config.json").read_text())
    wanted = json.loads(shapes.read_text())
    raw["text_config"].update(wanted["text_config"])
    encoder = raw["vision_config"]["encoder_config"]
    encoder.pop("layer_types", None)  # the tiny encoder's, one per layer: derived again for the full depth
    encoder.update(wanted["vision_config"]["encoder_config"])
    config = DeepseekOcr2Config(**{k: v for k, v in raw.items() if not k.startswith("_")})
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = DeepseekOcr2ForConditionalGeneration._from_config(config, dtype=dtype).eval()
    geometry = ImageGeometry.from_processor(processor.image_processor, processor.patch_size, processor.downsample_ratio)
    print(f"full-size random model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")
    return DeepseekOcr2Adapter(model, processor.tokenizer, geometry, device, dtype)


ENDLESS = SamplingParams(max_tokens=2048)  # more than a row makes here; its slot is sized by it


def bench_adapter(stack: ExitStack, args: argparse.Namespace) -> DeepseekOcr2Adapter:
    """The full-size random model (or, with `--tiny`, the tiny checkpoint) on `--device` in `--dtype`, with an
    EOS no token has: rows end only when cancelled."""
    tiny = stack.enter_context(tiny_checkpoint())
    if args.tiny:
        adapter = load_adapter(tiny, device=args.device, dtype=args.dtype)
    else:
        adapter = full_size_adapter(tiny, args.shapes, torch.device(args.device), getattr(torch, args.dtype))
    adapter.eos_token_id = -1
    return adapter


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint instead of the full-size shapes")
    parser.add_argument("--shapes", type=Path, default=SHAPES)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--prompt-tokens", type=int, default=256)


def random_prompts(adapter: DeepseekOcr2Adapter, rng: random.Random, count: int, tokens: int) -> list[PreparedSequence]:
    vocab = len(adapter.tokenizer)
    return [PreparedSequence(input_ids=[rng.randrange(3, vocab) for _ in range(tokens)]) for _ in range(count)]


def measure(
    engine: OcrEngine,
    prompts: list[PreparedSequence],
    steps: int,
    staggered: bool,
    params: SamplingParams = ENDLESS,
) -> float:
    """Aggregate tokens/s over `steps` decode steps once every row decodes."""
    sinks = [Timed() for _ in prompts]
    rows = []
    for sink, prompt in zip(sinks, prompts, strict=True):
        rows.append(engine.submit(prompt, params, sink))
        if staggered:
            sink.first.wait()
    for sink in sinks:
        sink.first.wait()
    start = max(sink.stamps[0] for sink in sinks)
    lead = sinks[-1]
    while sum(1 for stamp in lead.stamps if stamp > start) < steps:
        time.sleep(0.01)
    end = time.perf_counter()
    for row in rows:
        row.cancel()
    for sink in sinks:
        sink.ended.wait()
    counted = sum(1 for sink in sinks for stamp in sink.stamps if start < stamp <= end)
    return counted / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(parser)
    parser.add_argument("--counts", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(count) for count in args.counts.split(",")]

    with ExitStack() as stack:
        adapter = bench_adapter(stack, args)
        engine = OcrEngine(adapter, limits=SchedulerLimits(max_num_seqs=max(counts), interactive_reserve=0))
        rng = random.Random(0)

        def prompts(count: int) -> list[PreparedSequence]:
            return random_prompts(adapter, rng, count, args.prompt_tokens)

        print(f"device {args.device}, dtype {args.dtype}; prompts of {args.prompt_tokens} tokens, {args.steps} steps")
        measure(engine, prompts(2), 4, staggered=True)  # warm-up
        rounds: list[dict[int, tuple[float, float]]] = []  # per round: count → (staggered, static) tok/s
        for number in range(args.rounds):
            measured = {}
            for count in counts:
                staggered = measure(engine, prompts(count), args.steps, staggered=True)
                static = measure(engine, prompts(count), args.steps, staggered=False)
                measured[count] = (staggered, static)
                print(f"  round {number + 1}, {count} sequences: staggered {staggered:.1f} tok/s, static {static:.1f}")
            rounds.append(measured)
        engine.close()

    def median(of: int, kind: int, ratio: bool) -> float:
        """The median over the rounds of C=`of`'s tok/s (kind 0: staggered, 1: static), or of its ratio to C=1."""
        return statistics.median(r[of][kind] / (r[counts[0]][kind] if ratio else 1.0) for r in rounds)

    print()
    print(f"medians of {args.rounds} rounds")
    print("| sequences | staggered tok/s | × 1 | static tok/s | × 1 |")
    print("|---:|---:|---:|---:|---:|")
    for count in counts:
        print(
            f"| {count} | {median(count, 0, False):.1f} | {median(count, 0, True):.2f} | "
            f"{median(count, 1, False):.1f} | {median(count, 1, True):.2f} |"
        )
    last = counts[-1]
    spread = ", ".join(f"{r[last][0] / r[counts[0]][0]:.2f}" for r in rounds)
    ratio = median(last, 0, True)
    verdict(ratio >= 3.5, f"{last} staggered sequences: {ratio:.2f}× (>= 3.5; rounds {spread})")


if __name__ == "__main__":
    main()

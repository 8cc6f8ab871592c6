"""Engine throughput per batch size: pages/s and output tokens/s of whole OCR jobs through `run_ocr`.

For each batch size, OCRs the same N-page synthetic A4 text PDF (rasterized at `--dpi`, so at 144 DPI every
page is a 1024 px global view plus 6 tiles of 768 px) with a fixed `max_tokens`, greedy, through the real path:
`load_adapter` → `OcrEngine(batch_size=B)` → `run_ocr` (rasterize, preprocess, prefill, decode, detokenize).
One untimed warm-up job runs first (CUDA start-up, allocator); on CUDA the clock stops after a synchronize.

Random weights may emit EOS early and end a page after a few tokens, which would make batch sizes incomparable.
`--ignore-eos` (the default) gives the adapter instance of this benchmark an EOS id no token has, so every page
generates exactly `max_tokens` (like vLLM's `ignore_eos`); `--stop-at-eos` keeps the model's EOS. The output
tokens counted are always the ones actually generated.

Prints a Markdown table: batch size | pages/s | output tokens/s | mean prompt tokens, plus the seconds of the job
and the seconds spent in `adapter.prepare` as a share of it (CPU preprocessing on the prepare workers, summed over
them; it overlaps with the model, so it is a cost to hide, not a part of the job's time). No target: the PASS
line only checks that every page produced its tokens.

    python bench/engine.py [--model DIR_OR_ID] [--device auto] [--pages 8] [--max-tokens 32] [--batch-sizes 1,2,4,8]
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import ExitStack

from common import make_text_pdf, synchronize, tiny_checkpoint, verdict

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import run_ocr
from ocr_engine.prompts import PRESETS
from ocr_engine.request import OcrRequest, SamplingParams


class PrepareClock:
    """Wraps `adapter.prepare` of one adapter instance to add up the seconds spent in it, over all workers."""

    def __init__(self, adapter) -> None:
        self.seconds = 0.0
        self.inner = adapter.prepare
        self.lock = threading.Lock()
        adapter.prepare = self

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.inner(*args)
        finally:
            with self.lock:
                self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory or hub id (default: a tiny random one in a temp dir)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,2,4,8", help="comma-separated")
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--prompt", default=PRESETS["markdown"])
    eos = parser.add_mutually_exclusive_group()
    eos.add_argument("--ignore-eos", dest="ignore_eos", action="store_true", default=True, help="(default)")
    eos.add_argument("--stop-at-eos", dest="ignore_eos", action="store_false")
    args = parser.parse_args()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]

    limits = DocumentLimits(max_pages=max(args.pages, 500))
    sampling = SamplingParams(max_tokens=args.max_tokens)

    def job(pages: int) -> OcrRequest:
        document = load_document(make_text_pdf(pages), name="bench.pdf", limits=limits)
        return OcrRequest(prompt=args.prompt, documents=(document,), sampling=sampling, dpi=args.dpi)

    with ExitStack() as stack:
        model = args.model or stack.enter_context(tiny_checkpoint())
        adapter = load_adapter(model, device=args.device, dtype=args.dtype)
        if args.ignore_eos:
            adapter.eos_token_id = -1  # no token has this id: rows end only at max_tokens
        clock = PrepareClock(adapter)
        print(f"model: {args.model or 'tiny random DeepSeek-OCR-2'}; device {adapter.device}, dtype {adapter.dtype}")
        print(f"{args.pages} A4 pages at {args.dpi} DPI, max_tokens={args.max_tokens}, ignore EOS: {args.ignore_eos}")

        warm = job(min(2, args.pages))
        run_ocr(OcrEngine(adapter, batch_size=max(batch_sizes)), warm, limits=limits)
        request = job(args.pages)
        rows, complete = [], True
        for size in batch_sizes:
            engine = OcrEngine(adapter, batch_size=size)
            clock.seconds = 0.0
            synchronize(adapter.device)
            start = time.perf_counter()
            result = run_ocr(engine, request, limits=limits)
            synchronize(adapter.device)
            seconds = time.perf_counter() - start
            pages = len(result.pages)
            tokens = result.usage.completion_tokens
            complete &= not args.ignore_eos or tokens == pages * args.max_tokens
            rows.append((size, pages / seconds, tokens / seconds, result.usage.prompt_tokens / pages, seconds, tokens))
            rows[-1] += (clock.seconds / seconds,)

    print()
    print("| batch size | pages/s | output tokens/s | mean prompt tokens | job s | output tokens | prepare share |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, pages_s, tokens_s, prompt, seconds, tokens, share in rows:
        print(f"| {size} | {pages_s:.2f} | {tokens_s:.1f} | {prompt:.0f} | {seconds:.2f} | {tokens} | {share:.0%} |")
    print()
    best = max(rows, key=lambda row: row[1])
    print(f"best: batch size {best[0]} at {best[1]:.2f} pages/s ({best[1] / rows[0][1]:.2f}x batch size {rows[0][0]})")
    verdict(complete, "every page generated max_tokens tokens" if args.ignore_eos else "ran with the model's EOS")


if __name__ == "__main__":
    main()

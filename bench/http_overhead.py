"""Latency the HTTP path adds over calling the engine directly, for the same text-only request.

Writes a tiny random checkpoint (or uses `--model`), then measures the same short text-only prompt two ways:

  direct: `ModelHost(...)` in this process, then `ocr(OcrRequest(...), OcrListener())`;
  HTTP:   the real server (`ocrserve serve`, embedded mode) as a subprocess on a free port, and
          `POST /v1/completions` through one keep-alive httpx client (same max_tokens, temperature 0).

The prompt is text-only, so both paths do identical model work (greedy, same weights: the usage of both replies is
printed to show it). Calls alternate direct/HTTP after warm-up so that other load on the machine hits both alike.
Prints the median of each, their difference (target: < 10 ms) and the median of the paired differences. The
added latency covers request parsing, job submit, the worker-thread hand-off and event wake-up, and the reply.
Both processes use `--threads` torch CPU threads (default 1: with 2 cores, two processes of 2 spinning threads
each, plus any other load, make the model time swing by 10x and drown the difference being measured).

    python bench/http_overhead.py [--iterations 30] [--max-tokens 8] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import torch
from common import median_ms, tiny_checkpoint, verdict

from ocr_engine.pipeline import OcrListener
from ocr_engine.request import OcrRequest, SamplingParams
from workers.engine_options import EngineOptions
from workers.model_host import ModelHost

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures import running_server

PROMPT = "Convert the document to markdown."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30, help="timed calls per path")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per path first")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--model", help="checkpoint directory (default: a tiny random one in a temp dir)")
    parser.add_argument("--target-ms", type=float, default=10.0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads in this process and the server (0: torch default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with ExitStack() as stack:
        model = args.model or stack.enter_context(tiny_checkpoint())
        ocr = ModelHost(EngineOptions(model=model, device="cpu"))
        request = OcrRequest(prompt=PROMPT, sampling=SamplingParams(max_tokens=args.max_tokens), output_format="raw")
        body = {"model": model, "prompt": PROMPT, "max_tokens": args.max_tokens, "temperature": 0}

        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocrserve-bench-")))
        env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
        server = stack.enter_context(running_server(Path(model), logs, "server", env))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
        body["model"] = server.model

        def direct():
            return ocr(request, OcrListener())

        def http():
            response = client.post("/v1/completions", json=body)
            response.raise_for_status()
            return response.json()

        for _ in range(args.warmup):
            direct_result, reply = direct(), http()
        print(
            f"usage direct: {direct_result.usage.prompt_tokens} prompt + {direct_result.usage.completion_tokens}"
            f" completion tokens; HTTP: {reply['usage']['prompt_tokens']} + {reply['usage']['completion_tokens']}"
        )
        same_work = direct_result.text == reply["choices"][0]["text"]
        same_work &= direct_result.usage.completion_tokens == reply["usage"]["completion_tokens"]
        times: dict[str, list[float]] = {"direct": [], "http": []}
        for _ in range(args.iterations):
            for name, call in (("direct", direct), ("http", http)):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)

    direct_ms, http_ms = median_ms(times["direct"]), median_ms(times["http"])
    paired = statistics.median(h - d for d, h in zip(times["direct"], times["http"], strict=True)) * 1000
    threads = args.threads or "default"
    print(
        f"direct median: {direct_ms:.2f} ms over {args.iterations} calls"
        f" (max_tokens={args.max_tokens}, torch threads {threads})"
    )
    print(f"HTTP median:   {http_ms:.2f} ms over {args.iterations} calls")
    print(f"added latency: {http_ms - direct_ms:.2f} ms (median of paired differences: {paired:.2f} ms)")
    print(f"same text and token count on both paths: {same_work}")
    verdict(http_ms - direct_ms < args.target_ms, f"HTTP adds {http_ms - direct_ms:.2f} ms < {args.target_ms:g} ms")


if __name__ == "__main__":
    main()

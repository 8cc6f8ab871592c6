"""One large document over one or two workers: what shards buy (Celery mode, the tiny checkpoint).

One `--pages`-page PDF as a background response (`--max-tokens` per page) through a Celery-mode API, timed from
the request to its `completed` status: with 1 worker, and with 2 workers without shards and with shards of
`--shard-pages` pages, on the same machine. Each worker is pinned to a core of its own (and one torch thread),
as each would have a GPU of its own: a lone worker would otherwise spread its page preparation over both cores
of this machine, and two would only take cores from each other. Prints the wall times and the ratios to the
one-worker run. Target: >= 1.6x with 2 workers and shards.

    python bench/shards.py [--pages 64] [--shard-pages 16] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from common import make_text_pdf, tiny_checkpoint, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures import running_redis, running_server, running_worker, wait_for_worker

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def read_document(url: str, model: str, pdf: bytes, max_tokens: int) -> float:
    """Seconds from the request to the response's completion."""
    part = {"type": "input_file", "filename": "doc.pdf", "file_data": base64.b64encode(pdf).decode()}
    body = {
        "model": model,
        "input": [{"role": "user", "content": [part]}],
        "background": True,
        "max_output_tokens": max_tokens,
    }
    with httpx.Client(base_url=url, timeout=120) as client:
        start = time.perf_counter()
        reply = client.post("/v1/responses", json=body)
        reply.raise_for_status()
        response_id = reply.json()["id"]
        while (status := client.get(f"/v1/responses/{response_id}").json()["status"]) in ("queued", "in_progress"):
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
    if status not in ("completed", "incomplete"):
        raise SystemExit(f"the job ended {status}")
    return elapsed


def timed_run(checkpoint: Path, logs: Path, workers: int, shard_pages: int, pdf: bytes, max_tokens: int) -> float:
    with ExitStack() as stack:
        redis_url = stack.enter_context(running_redis(logs))
        for number in range(workers):
            name = f"worker-{workers}-{shard_pages}-{number}"
            worker = stack.enter_context(running_worker(checkpoint, logs, name, redis_url, ONE_THREAD))
            os.sched_setaffinity(worker.pid, {number % os.cpu_count()})  # before it starts its threads
        env = {"OCRSERVE_REDIS_URL": redis_url, "OCRSERVE_SHARD_PAGES": str(shard_pages), "OCRSERVE_MAX_PAGES": "1000"}
        api = stack.enter_context(running_server(checkpoint, logs, f"api-{workers}-{shard_pages}", env))
        wait_for_worker(api)
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=api.url, timeout=30) as client:
            while (
                len([w for w in client.get("/v1/devices/status").json()["workers"] if w["state"] == "ready"]) < workers
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("the workers never got ready")
                time.sleep(0.5)
        return read_document(api.url, api.model, pdf, max_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=64)
    parser.add_argument("--shard-pages", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    pdf = make_text_pdf(args.pages)
    with tiny_checkpoint() as model, tempfile.TemporaryDirectory() as scratch:
        checkpoint, logs = Path(model), Path(scratch)
        runs = [(1, args.shard_pages), (2, 0), (2, args.shard_pages)]
        times = {}
        for workers, shard_pages in runs:
            times[workers, shard_pages] = timed_run(checkpoint, logs, workers, shard_pages, pdf, args.max_tokens)
            print(f"  {workers} worker(s), shard pages {shard_pages}: {times[workers, shard_pages]:.1f} s", flush=True)
    base = times[1, args.shard_pages]
    print()
    print(f"| workers | shards of | {args.pages} pages in | × 1 worker |")
    print("|---:|---:|---:|---:|")
    for workers, shard_pages in runs:
        label = str(shard_pages) if shard_pages else "— (one job)"
        print(
            f"| {workers} | {label} | {times[workers, shard_pages]:.1f} s | {base / times[workers, shard_pages]:.2f} |"
        )
    ratio = base / times[2, args.shard_pages]
    verdict(ratio >= 1.6, f"2 workers with shards: {ratio:.2f}x one worker (>= 1.6x)")


if __name__ == "__main__":
    main()

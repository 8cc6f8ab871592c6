"""Celery + Redis against embedded mode: the queue's added latency, and how fast the API accepts background jobs.

1. Latency: the same short text-only `POST /v1/completions` (temperature 0, `--max-tokens`) against an embedded
   server and against a Celery-mode server (private redis-server, one `ocrserve worker`); median of `--requests`
   calls each after warm-up. Target: the queue adds under 20 ms.
2. Acceptance: `--jobs` background `POST /v1/responses` sent by `--concurrency` concurrent clients to the
   Celery-mode API; jobs accepted per second (target over 200/s with one API process), then every job is
   polled until it completed: none may be lost.

    python bench/queue_overhead.py [--requests 30] [--jobs 500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from common import tiny_checkpoint, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures import running_redis, running_server, running_worker, wait_for_worker


def median_latency_ms(url: str, model: str, requests: int, max_tokens: int) -> float:
    body = {"model": model, "prompt": "Hello", "max_tokens": max_tokens, "temperature": 0}
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for index in range(requests + 3):
            start = time.perf_counter()
            client.post("/v1/completions", json=body).raise_for_status()
            if index >= 3:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def accept_jobs(url: str, model: str, jobs: int, concurrency: int) -> tuple[float, list[str]]:
    body = {"model": model, "input": "Hello", "max_output_tokens": 1, "background": True}
    ids: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(jobs):
        queue.put_nowait(index)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            reply = await client.post("/v1/responses", json=body)
            reply.raise_for_status()
            ids.append(reply.json()["id"])

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return jobs / (time.perf_counter() - start), ids


def count_completed(url: str, ids: list[str], deadline_s: float) -> int:
    pending = set(ids)
    deadline = time.monotonic() + deadline_s
    with httpx.Client(base_url=url, timeout=30) as client:
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                if client.get(f"/v1/responses/{job_id}").json()["status"] in ("completed", "incomplete"):
                    pending.discard(job_id)
            time.sleep(0.5)
    return len(ids) - len(pending)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tiny_checkpoint() as model, tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        logs = Path(scratch)
        checkpoint = Path(model)
        embedded = stack.enter_context(running_server(checkpoint, logs, "embedded", {}))
        embedded_ms = median_latency_ms(embedded.url, embedded.model, args.requests, args.max_tokens)
        stack.close()

        redis_url = stack.enter_context(running_redis(logs))
        stack.enter_context(running_worker(checkpoint, logs, "worker", redis_url))
        celery = stack.enter_context(running_server(checkpoint, logs, "celery", {"OCRSERVE_REDIS_URL": redis_url}))
        wait_for_worker(celery)
        celery_ms = median_latency_ms(celery.url, celery.model, args.requests, args.max_tokens)
        print(f"median latency, {args.requests} completions of {args.max_tokens} tokens:")
        added = celery_ms - embedded_ms
        print(f"  embedded {embedded_ms:.1f} ms, Celery + Redis {celery_ms:.1f} ms, added {added:.1f} ms")
        verdict(added < 20, f"the queue adds {added:.1f} ms (target < 20 ms)")

        rate, ids = asyncio.run(accept_jobs(celery.url, celery.model, args.jobs, args.concurrency))
        print(f"accepted {len(ids)} background responses at {rate:.0f} jobs/s ({args.concurrency} concurrent clients)")
        completed = count_completed(celery.url, ids, deadline_s=300)
        print(f"completed afterwards: {completed} of {len(ids)}")
        verdict(rate > 200, f"the API accepts {rate:.0f} background jobs/s (target > 200/s)")
        verdict(completed == len(ids) == args.jobs, f"{args.jobs - completed} jobs lost")


if __name__ == "__main__":
    main()

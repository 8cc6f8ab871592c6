"""Many users at once: C concurrent single-page chat requests against the same requests one at a time.

For embedded mode and for Celery + Redis (a private redis-server, one `ocrserve worker`), through the real HTTP
server: `--requests` chat completions, each one distinct small page image (greedy, `--max-tokens` per page),
first one at a time, then with `--clients` concurrent clients, `--rounds` times (this machine's speed drifts: each
round's ratio is measured side by side). Prints requests/s of both and p50/p95 latency (medians of the rounds),
the median of the rounds' ratios, and checks that every concurrent reply equals its one-at-a-time reply
(continuous batching must not change a page's text). Target with the tiny checkpoint on the 2-core CPU: ratio
>= 2.5 at 16 clients and 256 tokens per page (the vision encoder's fixed cost per page bounds it here).

    python bench/concurrency.py [--clients 16] [--requests 32] [--max-tokens 256] [--rounds 3]
                                [--modes embedded,celery]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from common import make_page_image, tiny_checkpoint, verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures import ServerHandle, running_redis, running_server, running_worker, wait_for_worker


def page_urls(count: int) -> list[str]:
    urls = []
    for seed in range(count):
        buffer = io.BytesIO()
        make_page_image(320, 240, seed=seed).save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


async def one(client: httpx.AsyncClient, server: ServerHandle, url: str, max_tokens: int) -> tuple[str, float]:
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    start = time.perf_counter()
    reply = await client.post("/v1/chat/completions", json=body)
    reply.raise_for_status()
    return reply.json()["choices"][0]["message"]["content"], time.perf_counter() - start


async def run(server: ServerHandle, urls: list[str], clients: int, max_tokens: int) -> tuple[float, list, list]:
    """(requests/s, texts in request order, latencies)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(urls)):
        queue.put_nowait(index)
    texts: list[str] = [""] * len(urls)
    latencies: list[float] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            texts[index], latency = await one(client, server, urls[index], max_tokens)
            latencies.append(latency)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return len(urls) / (time.perf_counter() - start), texts, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(name: str, server: ServerHandle, args: argparse.Namespace) -> bool:
    urls = page_urls(args.requests)
    asyncio.run(run(server, urls[:2], 2, 4))  # warm-up
    alone: list[list[float]] = []  # per round: req/s, p50
    together: list[list[float]] = []  # per round: req/s, p50, p95
    differing = 0
    for number in range(args.rounds):
        alone_rate, alone_texts, alone_lat = asyncio.run(run(server, urls, 1, args.max_tokens))
        rate, texts, lat = asyncio.run(run(server, urls, args.clients, args.max_tokens))
        differing += sum(a != b for a, b in zip(alone_texts, texts, strict=True))
        alone.append([alone_rate, statistics.median(alone_lat)])
        together.append([rate, statistics.median(lat), percentile(lat, 0.95)])
        print(f"  {name} round {number + 1}: {alone_rate:.2f} req/s alone, {rate:.2f} with {args.clients} clients")
    ratios = [t[0] / a[0] for a, t in zip(alone, together, strict=True)]
    one = [statistics.median(column) for column in zip(*alone, strict=True)]
    many = [statistics.median(column) for column in zip(*together, strict=True)]
    print(f"{name}: {args.requests} single-page chats, {args.max_tokens} tokens; medians of {args.rounds} rounds")
    print(f"  one at a time: {one[0]:.2f} req/s, p50 {one[1]:.2f} s")
    print(f"  {args.clients} clients:    {many[0]:.2f} req/s, p50 {many[1]:.2f} s, p95 {many[2]:.2f} s")
    ratio, spread = statistics.median(ratios), ", ".join(f"{r:.2f}" for r in ratios)
    ok = verdict(ratio >= 2.5, f"{name}: throughput ratio {ratio:.2f} (target >= 2.5; rounds {spread})")
    total = args.requests * args.rounds
    return verdict(not differing, f"{name}: {total - differing} of {total} replies identical to one at a time") and ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="embedded,celery")
    args = parser.parse_args()
    env = {"OCRSERVE_MAX_NUM_SEQS": str(max(16, args.clients)), "OCRSERVE_WORKER_CONCURRENCY": str(args.clients)}
    with tiny_checkpoint() as model, tempfile.TemporaryDirectory() as scratch:
        logs, checkpoint = Path(scratch), Path(model)
        if "embedded" in args.modes:
            with running_server(checkpoint, logs, "embedded", env) as server:
                measure("embedded", server, args)
        if "celery" in args.modes:
            with ExitStack() as stack:
                redis_url = stack.enter_context(running_redis(logs))
                stack.enter_context(running_worker(checkpoint, logs, "worker", redis_url, env))
                celery_env = {"OCRSERVE_REDIS_URL": redis_url}
                server = stack.enter_context(running_server(checkpoint, logs, "celery", celery_env))
                wait_for_worker(server)
                measure("celery", server, args)


if __name__ == "__main__":
    main()

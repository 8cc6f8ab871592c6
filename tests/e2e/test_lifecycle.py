"""Stopping and starting: SIGTERM lets the API finish its in-flight requests and a worker finish its job, a
persistent Redis keeps finished and queued jobs across a restart, and bad start-up settings fail fast with
one clear line. Real `ocrserve serve` / `ocrserve worker` processes and private redis-servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import redis
import torch

from tests.e2e.test_celery import WORKER_ENV, Api, pdf_job, raw_events, wait_until
from tests.fixtures import (
    PAGE_SPLIT,
    _server_env,
    file_message,
    free_port,
    pdf_bytes,
    running_redis,
    running_server,
    running_worker,
)
from workers.celery_app import BACKGROUND_QUEUE
from workers.events import PageFinished
from workers.jobs import JobState

GRACE_S = 30


def wait_for_exit(process: subprocess.Popen, deadline_s: float) -> int:
    try:
        return process.wait(deadline_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the process did not exit within {deadline_s:g} s") from None


def refuses_connections(port: int, deadline_s: float = 10.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_to_the_api_finishes_the_in_flight_request(tiny_checkpoint: Path, server_logs: Path) -> None:
    env = {"OCRSERVE_SHUTDOWN_GRACE": str(GRACE_S)}
    body = {
        "model": "tiny-ocr2",
        "messages": file_message(pdf_bytes(3)),
        "max_tokens": 150,
        "stream": True,
    }
    with running_server(tiny_checkpoint, server_logs, "lifecycle-api", env) as server, server.client() as http:
        port = int(server.url.rsplit(":", 1)[1])
        started = threading.Event()
        outcome: dict = {}

        def read_stream() -> None:
            try:
                with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                    outcome["status"] = reply.status_code
                    outcome["lines"] = []
                    for line in reply.iter_lines():
                        started.set()
                        outcome["lines"].append(line)
            except Exception as exc:  # reported by the assertions below
                outcome["error"] = repr(exc)
            finally:
                started.set()

        reader = threading.Thread(target=read_stream, daemon=True)
        reader.start()
        assert started.wait(120), "the request never started"
        assert "error" not in outcome, outcome.get("error")
        server.process.send_signal(signal.SIGTERM)
        assert refuses_connections(port), "the API still accepts connections after SIGTERM"
        reader.join(GRACE_S + 30)
        assert not reader.is_alive(), "the in-flight request never finished"
        # uvicorn re-raises the signal once it has shut down cleanly, so the status is "terminated by SIGTERM"
        assert wait_for_exit(server.process, GRACE_S + 15) in (0, -signal.SIGTERM), server.log_tail()

    assert "error" not in outcome, f"{outcome['error']}; log:\n{server.log_tail()}"
    assert outcome["status"] == 200
    data = [line.removeprefix("data: ") for line in outcome["lines"] if line.startswith("data: ")]
    assert data[-1] == "[DONE]", f"the stream was cut off; log:\n{server.log_tail()}"
    chunks = [json.loads(item) for item in data[:-1]]
    text = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
    assert text.count(PAGE_SPLIT) == 2, "all three pages came back"
    assert any(choice.get("finish_reason") for chunk in chunks for choice in chunk["choices"])


def test_sigterm_to_a_worker_lets_its_running_job_complete(
    redis_url: str, tiny_checkpoint: Path, server_logs: Path
) -> None:
    api = Api(redis_url)
    try:
        with running_worker(tiny_checkpoint, server_logs, "lifecycle-worker", redis_url, WORKER_ENV) as worker:
            job = api.submit(pdf_job(pages=3, max_tokens=300))
            wait_until(api.in_state(job.id, JobState.RUNNING), "the job to start", 120)
            worker.send_signal(signal.SIGTERM)
            record = wait_until(api.in_state(job.id, JobState.COMPLETED), "the job to complete", 120)
            assert wait_for_exit(worker, 60) == 0
        assert record.result is not None and [page.index for page in record.result.pages] == [0, 1, 2]
        client = redis.Redis.from_url(redis_url)
        assert client.hlen("unacked") == 0, "the finished job's message was acknowledged, not left for redelivery"
        client.close()
    finally:
        api.close()


def test_a_persistent_redis_keeps_finished_and_queued_jobs_across_a_restart(
    tmp_path: Path, tiny_checkpoint: Path, server_logs: Path
) -> None:
    port = free_port()
    with running_redis(tmp_path, appendonly=True, port=port) as url:
        api = Api(url)
        with running_worker(tiny_checkpoint, server_logs, "lifecycle-aof-1", url, WORKER_ENV):
            finished = api.submit(pdf_job(pages=1, max_tokens=5))
            wait_until(api.in_state(finished.id, JobState.COMPLETED), "the first job to complete", 120)
        queued = api.submit(pdf_job(pages=2, max_tokens=5))
        assert api.get(queued.id).state is JobState.QUEUED
        api.close()

    with running_redis(tmp_path, appendonly=True, port=port) as url:
        api = Api(url)
        try:
            record = api.get(finished.id)
            assert record is not None and record.state is JobState.COMPLETED
            assert record.result is not None and len(record.result.pages) == 1
            waiting = api.get(queued.id)
            assert waiting is not None and waiting.state is JobState.QUEUED
            client = redis.Redis.from_url(url)
            assert client.llen(BACKGROUND_QUEUE) == 1, "the queued job's message survived the restart"
            client.close()
            with running_worker(tiny_checkpoint, server_logs, "lifecycle-aof-2", url, WORKER_ENV):
                done = wait_until(api.in_state(queued.id, JobState.COMPLETED), "the queued job to complete", 120)
            assert done.result is not None and len(done.result.pages) == 2
        finally:
            api.close()


def test_a_redis_restart_mid_job_keeps_its_finished_pages(
    tmp_path: Path, tiny_checkpoint: Path, server_logs: Path
) -> None:
    """Redis (append-only, fsync always) stopped while a worker is two pages into a job, and started again: the
    worker, which loses its broker, exits (Celery cannot go on; its supervisor restarts it: here a second worker
    stands in); the job completes, and the pages finished before the restart are not read again."""
    port = free_port()
    one_at_a_time = {**WORKER_ENV, "OCRSERVE_MAX_NUM_SEQS": "1"}
    with ExitStack() as first_redis:
        url = first_redis.enter_context(running_redis(tmp_path, appendonly=True, port=port))
        with running_worker(tiny_checkpoint, server_logs, "lifecycle-aof-mid-job", url, one_at_a_time) as first:
            api = Api(url)
            job = api.submit(pdf_job(pages=6, max_tokens=200))
            wait_until(api.in_state(job.id, JobState.RUNNING, pages_done=2), "two pages to be done", 120)
            api.close()
            first_redis.close()  # Redis stops while the worker runs the job
            exit_status = wait_for_exit(first, 60)
    with running_redis(tmp_path, appendonly=True, port=port) as url:
        api = Api(url)
        try:
            with running_worker(tiny_checkpoint, server_logs, "lifecycle-aof-restarted", url, WORKER_ENV):
                done = wait_until(api.in_state(job.id, JobState.COMPLETED), "the job to complete", 180)
            events = raw_events(url, job.id)
        finally:
            api.close()
    assert exit_status != 0
    assert done.result is not None and [page.index for page in done.result.pages] == list(range(6))
    runs = Counter(event.page for event in events if isinstance(event, PageFinished))
    assert runs == dict.fromkeys(range(6), 1)  # the two pages finished before the restart were not read again


def test_start_up_problems_are_one_clear_line(redis_url: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    # a hub id on a machine whose hub cannot be resolved, and an empty cache: one line, not a minute of retries
    offline = {"OCRSERVE_MODEL": "deepseek-community/DeepSeek-OCR-2", "HF_ENDPOINT": "https://hub.invalid"}
    offline |= {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    offline |= {"HF_HOME": str(tmp_path / "hf-home")} | dict.fromkeys(("HTTPS_PROXY", "https_proxy", "ALL_PROXY"), "")
    cases = {
        "no-redis": ("worker", {"OCRSERVE_REDIS_URL": dead_redis}, ["cannot reach Redis", "OCRSERVE_REDIS_URL"]),
        "no-model": (
            "worker",
            {"OCRSERVE_REDIS_URL": redis_url, "OCRSERVE_MODEL": str(tmp_path / "missing")},
            ["no checkpoint directory", "OCRSERVE_MODEL"],
        ),
        "serve-offline-hub": ("serve", offline, ["hub.invalid cannot be reached", "OCRSERVE_MODEL"]),
        "worker-offline-hub": (
            "worker",
            {"OCRSERVE_REDIS_URL": redis_url, **offline},
            ["hub.invalid cannot be reached", "OCRSERVE_MODEL"],
        ),
    }
    if not torch.cuda.is_available():
        cases["no-cuda"] = (
            "worker",
            {"OCRSERVE_REDIS_URL": redis_url, "OCRSERVE_DEVICE": "cuda"},
            ["OCRSERVE_DEVICE asks for CUDA but no CUDA device is available"],
        )
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", "from ocrserve.cli import main; main()", command],
            env=_server_env(tiny_checkpoint, free_port(), env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name, (command, env, _) in cases.items()
    }
    try:
        for name, process in processes.items():
            try:
                _, stderr = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name}: the worker did not exit (retrying forever?)") from None
            assert process.returncode != 0, f"{name}: exit status 0"
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) == 1, f"{name}: expected one line, got:\n{stderr}"
            for expected in cases[name][2]:
                assert expected in lines[0], f"{name}: {lines[0]!r} lacks {expected!r}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

"""Schemathesis, every check on, against real servers of both dispatchers: the OpenAPI document describes what the
server does (statuses, content types, bodies, constraints, auth, `Allow`), and no request makes it fail.

The servers are this module's own (fuzzing sends many jobs and device switches), with API keys set so that the
auth checks have something to check, and a checkpoint of 512 positions so that generated jobs stay short.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_SERVER_ENV
from tests.fixtures import ServerHandle, running_redis, running_server, running_worker, wait_for_worker

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "fuzz-key"
AUTH = f"Bearer {KEY}"
FUZZ_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def short_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ocr_engine.testing import write_tiny_deepseek_ocr2

    return write_tiny_deepseek_ocr2(tmp_path_factory.mktemp("tiny-ocr2-512"), max_position_embeddings=512)


@pytest.fixture(params=["embedded", "celery"])
def fuzzed_server(
    request: pytest.FixtureRequest,
    short_checkpoint: Path,
    server_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerHandle]:
    env = {**DEFAULT_SERVER_ENV, "OCRSERVE_API_KEYS": KEY, "OCRSERVE_ADMIN_KEYS": KEY}
    with ExitStack() as stack:
        if request.param == "celery":
            redis_url = stack.enter_context(running_redis(tmp_path_factory.mktemp("fuzz-redis")))
            stack.enter_context(running_worker(short_checkpoint, server_logs, "fuzz-worker", redis_url, env))
            env = {**env, "OCRSERVE_REDIS_URL": redis_url}
        handle = stack.enter_context(running_server(short_checkpoint, server_logs, f"fuzz-{request.param}", env))
        wait_for_worker(handle, authorization=AUTH)
        yield handle


@pytest.mark.timeout(FUZZ_TIMEOUT_S + 300)  # the run, and the servers' start beside it
def test_schemathesis_finds_no_failure(fuzzed_server: ServerHandle, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"{fuzzed_server.url}/openapi.json",
            "--header",
            f"Authorization: {AUTH}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        check=False,
        cwd=tmp_path,  # its cache and reports stay out of the checkout
    )
    assert run.returncode == 0, f"{run.stdout[-12000:]}\n{run.stderr[-3000:]}\nserver log:\n{fuzzed_server.log_tail()}"
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1]

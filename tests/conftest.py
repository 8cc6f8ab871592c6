"""Shared fixtures: the tiny checkpoint, real `ocrserve serve` subprocesses, a local document server, documents."""

from __future__ import annotations

import os

# LiteLLM must never reach the internet: these have to be set before it is first imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from ocr_engine.model_info import ModelInfo
from tests.fixtures import (
    DocServer,
    ServerHandle,
    noise_png,
    page_image,
    png_bytes,
    running_doc_server,
    running_redis,
    running_server,
    running_worker,
    wait_for_worker,
)

TESTS = Path(__file__).parent
# What each folder's tests need; `pytest -m pure` runs the ones that need nothing (seconds).
NEEDS = ("pure", "redis", "model", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its folder (pyproject.toml describes the markers)."""
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in NEEDS:
            item.add_marker(folder)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `ocrserve write-checkpoint DIR` writes: a tiny random DeepSeek-OCR-2 in the real on-disk format."""
    from ocr_engine.testing import write_tiny_deepseek_ocr2

    return write_tiny_deepseek_ocr2(tmp_path_factory.mktemp("tiny-ocr2"))


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the API reads of the tiny checkpoint (config, tokenizer, processor), no weights: in-process apps."""
    from ocr_engine.testing import write_model_files

    return write_model_files(tmp_path_factory.mktemp("tiny-ocr2-files"))


@pytest.fixture(scope="session")
def model_info(model_files: Path) -> ModelInfo:
    """What the API knows of the tiny model (length, tokenizer), for apps built in process."""
    from ocr_engine.model_info import load_model_info

    return load_model_info(str(model_files))


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


DEFAULT_SERVER_ENV = {
    "OCRSERVE_URL_ALLOW_PRIVATE": "true",
    "OCRSERVE_MAX_PAGES": "6",
    "OCRSERVE_MAX_DOCUMENT_BYTES": "2000000",
    "OCRSERVE_MAX_PIXELS": "30000000",
    # a batch of four, so that the pages of a six-page job finish in two waves (tests cancel between them)
    "OCRSERVE_MAX_NUM_SEQS": "4",
}


@pytest.fixture(scope="session", params=["embedded", "celery"])
def server(
    request: pytest.FixtureRequest, tiny_checkpoint: Path, server_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """The default server: no API keys, private URLs allowed (for the local document server), small limits.

    Every test using it runs against both dispatchers: embedded (the model in the API process) and Celery (a
    private redis-server, a real `ocrserve worker` process, and an API that never loads the model).
    """
    if request.param == "embedded":
        with running_server(tiny_checkpoint, server_logs, "default", DEFAULT_SERVER_ENV) as handle:
            yield handle
        return
    with ExitStack() as stack:
        redis_url = stack.enter_context(running_redis(tmp_path_factory.mktemp("redis")))
        stack.enter_context(
            running_worker(tiny_checkpoint, server_logs, "celery-worker", redis_url, DEFAULT_SERVER_ENV)
        )
        env = {**DEFAULT_SERVER_ENV, "OCRSERVE_REDIS_URL": redis_url}
        handle = stack.enter_context(running_server(tiny_checkpoint, server_logs, "celery-api", env))
        wait_for_worker(handle)
        yield handle


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for one test module (the modules' keys never meet)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def tiny_v1_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DeepSeek-OCR (v1) checkpoint in the original on-disk format."""
    from ocr_engine.testing import write_tiny_deepseek_ocr

    return write_tiny_deepseek_ocr(tmp_path_factory.mktemp("tiny-ocr1"))


@pytest.fixture(scope="session")
def v1_server(tiny_v1_checkpoint: Path, server_logs: Path) -> Iterator[ServerHandle]:
    """An embedded server of the v1 family (the dispatchers are the same for both families)."""
    with running_server(tiny_v1_checkpoint, server_logs, "v1", {}) as handle:
        yield handle


@pytest.fixture(scope="session")
def strict_server(tiny_checkpoint: Path, server_logs: Path) -> Iterator[ServerHandle]:
    """API keys k1,k2, admin key `admin1`, and the default URL policy (private addresses refused); default
    limits otherwise. One server serves the auth tests and the SSRF test, to keep start-ups (and CI cores) down.
    """
    env = {"OCRSERVE_API_KEYS": "k1,k2", "OCRSERVE_ADMIN_KEYS": "admin1"}
    with running_server(tiny_checkpoint, server_logs, "strict", env) as handle:
        yield handle


@pytest.fixture(scope="session")
def doc_server() -> Iterator[DocServer]:
    """A local web server: /page.png, /big.png (over 2 MB), /redirect (302 → /page.png), anything else 404."""
    files = {"/page.png": png_bytes(page_image("Fetched over HTTP")), "/big.png": noise_png()}
    with running_doc_server(files) as server:
        yield server


@pytest.fixture(scope="session")
def png() -> bytes:
    return png_bytes()


@pytest.fixture
def anyio_backend() -> str:
    """Tests marked `anyio` run on asyncio, as the server does."""
    return "asyncio"

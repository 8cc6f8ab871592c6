"""create_app's start-up and shutdown, in process: what it warns about, and what it closes even when a close fails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import pytest
from litestar.testing import TestClient

from app.asgi import create_app
from ocrserve.settings import Settings
from workers.dispatch import Dispatcher
from workers.redis_client import RedisConnection


class DispatcherFailingToClose:
    """All the lifespan uses of a dispatcher: start, and a close that fails."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        raise RuntimeError("the dispatcher failed to close")


def test_the_redis_client_is_closed_even_when_the_dispatcher_fails_to_close(
    model_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    async def close(self: RedisConnection) -> None:
        closed.append(self.where)

    monkeypatch.setattr(RedisConnection, "close", close)
    settings = Settings(model=str(model_files), redis_url="redis://127.0.0.1:9/0")
    app = create_app(settings, dispatcher=cast(Dispatcher, DispatcherFailingToClose()))
    failures: list[Exception] = []
    try:
        with TestClient(app):
            pass
    except* RuntimeError as failed:  # the shutdown's error, grouped by the task group it comes out of
        failures.extend(failed.exceptions)
    assert [str(failure) for failure in failures] == ["the dispatcher failed to close"], "the error still shows"
    assert closed == ["127.0.0.1:9"]


@pytest.mark.parametrize(("admin_keys", "warned"), [((), True), (("admin",), False)])
def test_api_keys_without_admin_keys_warn_that_devices_are_out_of_reach(
    model_files: Path, caplog: pytest.LogCaptureFixture, admin_keys: tuple[str, ...], warned: bool
) -> None:
    settings = Settings(model=str(model_files), api_keys=("key",), admin_keys=admin_keys)
    with caplog.at_level(logging.WARNING, logger="app.asgi"):
        create_app(settings, dispatcher=cast(Dispatcher, DispatcherFailingToClose()))
    warnings = [record.getMessage() for record in caplog.records if "OCRSERVE_ADMIN_KEYS" in record.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert "/v1/devices/" in warnings[0] and "403" in warnings[0]

"""create_app(settings) -> Litestar. `uvicorn --factory app.asgi:create_app` reads the settings from the env."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from app.admission.redis_store import RedisAdmissionStore
from app.admission.store import AdmissionStore, MemoryAdmissionStore
from app.allow_header import allow_every_method
from app.context import AppContext
from app.errors import EXCEPTION_HANDLERS
from app.metrics import Metrics, count_requests
from app.openapi import (
    declare_bearer_auth,
    link_stored_responses,
    name_the_served_model,
    openapi_config,
    use_msgspec_schemas,
)
from app.request import ApiRequest
from app.request_ids import request_ids
from app.routes.devices import devices_router
from app.routes.openai import openai_router
from app.routes.responses import responses_router
from app.routes.system import package_version, system_routes
from app.routes.ui import ui_router
from ocr_engine.model_info import ModelInfo, load_model_info
from ocr_engine.modes import resolve_mode
from ocrserve.settings import Settings, settings_from_env
from workers.dispatch import Dispatcher
from workers.redis_client import RedisConnection

DOCS_ASSETS = "/docs/assets"

log = logging.getLogger(__name__)


def build_dispatcher(settings: Settings, redis: RedisConnection | None) -> Dispatcher:
    """Embedded (job threads in this process) unless a Redis URL is set (Celery workers do the work)."""
    if redis is not None:
        from workers.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(
            redis,
            retention=settings.job_retention,
            redelivery_timeout=settings.redelivery_timeout,
            worker_timeout=settings.worker_timeout,
            switch_timeout=settings.switch_timeout,
            shard_pages=settings.shard_pages,
        )
    from workers.engine_options import EngineOptions
    from workers.local import LocalDispatcher
    from workers.model_host import ModelHost
    from workers.watchdog import HARD_LIMIT_GRACE_S

    options = EngineOptions.of(settings)
    # The model loads on the worker thread, so /health answers 503 while the weights load.
    return LocalDispatcher(
        lambda: ModelHost(options),
        model=settings.model,
        concurrency=settings.worker_concurrency,
        stall_limit=settings.job_time_limit + HARD_LIMIT_GRACE_S,
    )


def build_admission_store(settings: Settings, redis: RedisConnection | None) -> AdmissionStore:
    """Admission counters where the jobs are: in Redis, shared by every API process, in Celery mode."""
    if redis is not None:
        return RedisAdmissionStore(redis, ttl=settings.job_retention)
    return MemoryAdmissionStore(ttl=settings.job_retention)


def _provide_context(state: State) -> AppContext:
    return state.context


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> dict:
    return request.app.openapi_schema.to_schema()


def create_app(
    settings: Settings | None = None,
    dispatcher: Dispatcher | None = None,
    admission: AdmissionStore | None = None,
    model: ModelInfo | None = None,
) -> Litestar:
    """The API over `dispatcher` and `admission` (by default those the settings call for: embedded, or Celery
    and Redis, which then share one Redis client) serving `model` (by default read from OCRSERVE_MODEL)."""
    settings = settings or settings_from_env()
    model = model or load_model_info(settings.model)
    resolve_mode(model.family, settings.mode, param="OCRSERVE_MODE")
    if settings.api_keys and not settings.admin_keys:
        log.warning(
            "OCRSERVE_API_KEYS is set but OCRSERVE_ADMIN_KEYS is not: /v1/devices/* answers 403 to every key; "
            "set OCRSERVE_ADMIN_KEYS to reach them"
        )
    redis = RedisConnection(settings.redis_url) if settings.redis_url else None
    dispatcher = dispatcher or build_dispatcher(settings, redis)
    admission = admission or build_admission_store(settings, redis)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.url_read_timeout, connect=settings.url_connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
            app.state.context = AppContext(
                settings=settings,
                dispatcher=dispatcher,
                admission=admission,
                redis=redis,
                model=model,
                metrics=Metrics(),
                http=http,
                started_at=int(time.time()),
            )
            await dispatcher.start()
            try:
                yield
            finally:
                try:
                    await dispatcher.close()
                finally:
                    if redis is not None:
                        await redis.close()

    # Swagger UI from a packaged copy, not a CDN: on-prem installs are often offline.
    swagger = SwaggerRenderPlugin(
        path="/",
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon="",
    )
    docs_assets = create_static_files_router(path=DOCS_ASSETS, directories=[swagger_ui_path], name="docs-assets")
    playground = [ui_router()] if settings.ui else []
    app = Litestar(
        route_handlers=[
            openai_router,
            responses_router,
            devices_router,
            openapi_json,
            docs_assets,
            *playground,
            *system_routes,
        ],
        dependencies={"ctx": Provide(_provide_context, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=ApiRequest,
        middleware=[request_ids, count_requests, allow_every_method],
        # the process's logging is set up by `ocrserve` (ocrserve.logs): Litestar's own records go to the root logger
        logging_config=LoggingConfig(
            configure_root_logger=False, loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}}
        ),
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi_config(package_version(), [swagger]),
    )
    use_msgspec_schemas(app)
    name_the_served_model(app, (settings.model_name, settings.model))
    link_stored_responses(app)
    declare_bearer_auth(app, api_keys=bool(settings.api_keys), admin_keys=bool(settings.admin_keys))
    return app

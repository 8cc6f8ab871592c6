"""Root-level endpoints: server info, health, ping, version, load, metrics, tokenize/detokenize, and vLLM's
endpoints of tasks this model does not have (app.routes.unsupported)."""

from __future__ import annotations

from litestar import Response, get, post, route
from litestar.openapi import ResponseSpec

from app.context import AppContext
from app.openapi import error_responses
from app.protocol.system import Health, Load, ServerInfo
from app.protocol.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from app.routes.unsupported import unsupported_routes
from app.serving.system import describe_server, health_report, package_version, render_metrics, server_load
from app.serving.tokenize import detokenize, tokenize

ERRORS = error_responses()
TOKENIZER_ERRORS = error_responses(404, 413)
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


@get("/", summary="What this server is: name, version, served model, backend, where the docs are", responses=ERRORS)
async def server_info(ctx: AppContext) -> ServerInfo:
    return describe_server(ctx)


@get(
    "/health",
    summary="200 when jobs can be taken, else 503; verbose=1 adds the Redis and worker checks",
    responses={
        **ERRORS,
        503: ResponseSpec(Health, description="The model is loading or failed, or no worker is ready"),
    },
)
async def health(ctx: AppContext, verbose: bool = False) -> Response[Health]:
    body, status_code = await health_report(ctx, verbose=verbose)
    return Response(body, status_code=status_code)


@route("/ping", http_method=["GET", "POST"], status_code=200, responses=ERRORS)
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@get("/version", responses=ERRORS)
async def get_version() -> dict[str, str]:
    return {"version": package_version()}


@get("/load", summary="Jobs queued or running, and the pages in the workers' running batches", responses=ERRORS)
async def load(ctx: AppContext) -> Load:
    return await server_load(ctx)


@get("/metrics", summary="Prometheus metrics", media_type=PROMETHEUS_TEXT, responses=ERRORS)
async def metrics(ctx: AppContext) -> Response[bytes]:
    return Response(await render_metrics(ctx), media_type=PROMETHEUS_TEXT)


@post("/tokenize", status_code=200, responses=TOKENIZER_ERRORS)
async def tokenize_route(data: TokenizeRequest, ctx: AppContext) -> TokenizeResponse:
    return await tokenize(ctx, data)


@post("/detokenize", status_code=200, responses=TOKENIZER_ERRORS)
async def detokenize_route(data: DetokenizeRequest, ctx: AppContext) -> DetokenizeResponse:
    return await detokenize(ctx, data)


system_routes = [
    server_info,
    health,
    ping,
    get_version,
    load,
    metrics,
    tokenize_route,
    detokenize_route,
    *unsupported_routes,
]

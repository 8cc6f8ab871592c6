"""Operational endpoints: health, ping, version, load, metrics, tokenize/detokenize."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from litestar import Response, get, post, route

from app.context import AppContext
from app.protocol.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from app.serving.tokenize import detokenize, tokenize
from workers.dispatch import Readiness


def package_version() -> str:
    try:
        return version("ocrserve")
    except PackageNotFoundError:
        return "0+unknown"


@get("/health", summary="200 when the model is ready; 503 while loading or after a failed load")
async def health(ctx: AppContext) -> Response[dict[str, str]]:
    status = ctx.dispatcher.status()
    code = 200 if status.readiness is Readiness.READY else 503
    return Response({"status": status.readiness.value, "message": status.message}, status_code=code)


@route("/ping", http_method=["GET", "POST"], status_code=200)
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@get("/version")
async def get_version() -> dict[str, str]:
    return {"version": package_version()}


@get("/load", summary="Jobs queued or running on the engine")
async def load(ctx: AppContext) -> dict[str, int]:
    status = ctx.dispatcher.status()
    return {"server_load": status.queued + status.running}


@get("/metrics", summary="Prometheus metrics")
async def metrics(ctx: AppContext) -> Response[bytes]:
    body = ctx.metrics.render(ctx.dispatcher.status().queued)
    return Response(body, media_type="text/plain; version=0.0.4")


@post("/tokenize", status_code=200)
async def tokenize_route(data: TokenizeRequest, ctx: AppContext) -> TokenizeResponse:
    return tokenize(ctx, data)


@post("/detokenize", status_code=200)
async def detokenize_route(data: DetokenizeRequest, ctx: AppContext) -> DetokenizeResponse:
    return detokenize(ctx, data)


system_routes = [health, ping, get_version, load, metrics, tokenize_route, detokenize_route]

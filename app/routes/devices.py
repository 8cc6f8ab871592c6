"""/v1/devices/*: operators see which workers run where, and move the model without a redeploy (admin key)."""

from __future__ import annotations

from litestar import Router, get, post

from app.auth import require_admin_key
from app.context import AppContext
from app.openapi import error_responses
from app.protocol.devices import DevicesStatus, SwitchRequest, SwitchResponse
from app.serving.devices import devices_status, switch_device

ADMIN_ERRORS = error_responses(401, 403, 503)


@get("/status", summary="Workers, their devices and health (the worker registry)", responses=ADMIN_ERRORS)
async def status(ctx: AppContext) -> DevicesStatus:
    return await devices_status(ctx)


@post(
    "/switch",
    status_code=200,
    summary="Move the model of one or every worker to cpu, gpu:N or auto",
    responses=error_responses(401, 403, 413, 503),
)
async def switch(data: SwitchRequest, ctx: AppContext) -> SwitchResponse:
    return await switch_device(ctx, data)


devices_router = Router(path="/v1/devices", route_handlers=[status, switch], guards=[require_admin_key])

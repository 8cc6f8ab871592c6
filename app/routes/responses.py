"""/v1/responses: create (foreground or background, streamed or not), retrieve, resume a stream, cancel, delete."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, delete, get, post
from litestar.openapi import ResponseSpec

from app.admission.guard import AdmissionTicket
from app.auth import require_api_key
from app.context import AppContext
from app.openapi import EventStreamOperation, error_responses
from app.protocol.responses import ResponseCreateRequest, ResponseDeleted, ResponseObject
from app.routes.job_post import job_post
from app.serving import page_images
from app.serving.responses import endpoints as responses


@job_post(
    "/responses",
    summary="Create a response (OCR of images and PDFs), optionally in the background",
    reply=ResponseObject,
    described="The response, or with stream=true its events",
)
async def create_response(data: ResponseCreateRequest, ctx: AppContext, admission: AdmissionTicket) -> Any:
    return await responses.create_response(ctx, data, admission)


FOUND_ERRORS = error_responses(401, 404, 503)  # 503: the job store (Redis) cannot be reached


@get(
    "/responses/{response_id:str}",
    summary="Get a response; with stream=true, its events after starting_after",
    responses={200: ResponseSpec(ResponseObject, description="The response, or its events"), **FOUND_ERRORS},
    operation_class=EventStreamOperation,
)
async def retrieve_response(
    response_id: str, ctx: AppContext, stream: bool = False, starting_after: int | None = None
) -> Any:
    return await responses.retrieve_response(ctx, response_id, stream=stream, starting_after=starting_after)


@get(
    "/responses/{response_id:str}/pages/{page:int}",
    summary="A background response's page image (PNG), in the pixels its layout boxes are in",
    media_type="image/png",
    responses={
        200: ResponseSpec(bytes, description="The page as the model read it", media_type="image/png"),
        **FOUND_ERRORS,
    },
)
async def get_page_image(response_id: str, page: int, ctx: AppContext) -> Response[bytes]:
    return Response(await page_images.page_png(ctx, response_id, page), media_type="image/png")


@delete("/responses/{response_id:str}", status_code=200, summary="Delete a response", responses=FOUND_ERRORS)
async def delete_response(response_id: str, ctx: AppContext) -> ResponseDeleted:
    return await responses.delete_response(ctx, response_id)


@post(
    "/responses/{response_id:str}/cancel",
    status_code=200,
    summary="Cancel a queued or running background response",
    responses=FOUND_ERRORS,
)
async def cancel_response(response_id: str, ctx: AppContext) -> ResponseObject:
    return await responses.cancel_response(ctx, response_id)


responses_router = Router(
    path="/v1",
    route_handlers=[create_response, retrieve_response, get_page_image, cancel_response, delete_response],
    guards=[require_api_key],
)

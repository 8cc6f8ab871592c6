"""The OpenAI-compatible endpoints under /v1 (behind the API-key guard)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from litestar import Request, Router, get

from app.admission.guard import AdmissionTicket
from app.auth import require_api_key
from app.context import AppContext
from app.errors import ApiError
from app.openapi import API_KEY_ERRORS, error_responses
from app.protocol.chat import ChatCompletion, ChatCompletionRequest
from app.protocol.completions import Completion, CompletionRequest
from app.protocol.models import ModelCard, ModelList, ModelPermission
from app.routes.job_post import job_post
from app.serving.chat import create_chat_completion
from app.serving.completions import create_completion


@job_post(
    "/chat/completions",
    summary="Chat completion over images and PDFs",
    reply=ChatCompletion,
    described="The reply, or with stream=true its chunks",
)
async def chat_completions(data: ChatCompletionRequest, ctx: AppContext, admission: AdmissionTicket) -> Any:
    return await create_chat_completion(ctx, data, admission)


@job_post(
    "/completions",
    summary="Text completion",
    reply=Completion,
    described="The completion, or with stream=true its chunks",
)
async def completions(data: CompletionRequest, ctx: AppContext, admission: AdmissionTicket) -> Any:
    return await create_completion(ctx, data, admission)


MODELS_PREFIX = "/v1/models/"


def requested_model_id(request: Request, model_id: str) -> str:
    """The id as the client wrote it. The openai SDK percent-encodes the id's slashes (`/v1/models/%2Fmodels%2Fx`)
    and the decoded path merges the double slash of an absolute path, so the raw path is read when it has one."""
    raw = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    if raw.startswith(MODELS_PREFIX):
        return unquote(raw.removeprefix(MODELS_PREFIX))
    return model_id.removeprefix("/")


def _card(ctx: AppContext) -> ModelCard:
    return ModelCard(
        id=ctx.settings.model_name,
        created=ctx.started_at,
        root=ctx.settings.model,
        max_model_len=ctx.model.max_model_len,
        permission=[ModelPermission.of(ctx.settings.model_name, ctx.started_at)],
    )


@get("/models", summary="List the served model", responses=API_KEY_ERRORS)
async def list_models(ctx: AppContext) -> ModelList:
    return ModelList(data=[_card(ctx)])


@get("/models/{model_id:path}", summary="Describe the served model", responses=error_responses(401, 404))
async def get_model(model_id: str, request: Request, ctx: AppContext) -> ModelCard:
    model_id = requested_model_id(request, model_id)
    if model_id not in (ctx.settings.model_name, ctx.settings.model):
        raise ApiError(404, f"the model `{model_id}` does not exist", code="model_not_found", param="model")
    return _card(ctx)


openai_router = Router(
    path="/v1",
    route_handlers=[chat_completions, completions, list_models, get_model],
    guards=[require_api_key],
)

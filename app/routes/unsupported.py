"""vLLM's endpoints for embedding and pooling models: this is a generative OCR model, so each answers a 400 in the
OpenAI envelope that says so, as vLLM does for a generative model, whatever the body (it is never read). They are
left out of the OpenAPI document: it describes what the server does, and these do nothing."""

from __future__ import annotations

from litestar import post

from app.auth import require_api_key
from app.context import AppContext
from app.errors import ApiError


def _unsupported(ctx: AppContext, api: str) -> ApiError:
    return ApiError(
        400,
        f"The model `{ctx.settings.model_name}` does not support the {api} API: it is a generative OCR model;"
        " use /v1/chat/completions or /v1/responses",
        code="unsupported_task",
    )


@post("/v1/embeddings", guards=[require_api_key], include_in_schema=False)
async def embeddings(ctx: AppContext) -> None:
    raise _unsupported(ctx, "Embeddings")


@post("/pooling", include_in_schema=False)
async def pooling(ctx: AppContext) -> None:
    raise _unsupported(ctx, "Pooling")


@post("/classify", include_in_schema=False)
async def classify(ctx: AppContext) -> None:
    raise _unsupported(ctx, "Classification")


unsupported_routes = [embeddings, pooling, classify]

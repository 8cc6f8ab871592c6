"""Chat completions: request → OCR job → one reply, or an SSE stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.admission.guard import AdmissionTicket
from app.context import AppContext
from app.errors import ApiError
from app.protocol.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
)
from app.protocol.common import UsageInfo
from app.serving import jobs
from app.serving.logprobs import ocr_pages, result_tokens, token_logprobs
from app.serving.sse import DONE, EventStream, frame
from ocr_engine.request import OcrRequest
from workers.events import JobCompleted, JobFailed, TextDelta
from workers.jobs import JobRecord


def _logprobs(body: ChatCompletionRequest) -> int | None:
    """OpenAI's rule: `top_logprobs` only with `logprobs: true` (0, its off value, goes with either)."""
    if body.top_logprobs and not body.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", code="invalid_value", param="top_logprobs")
    return (body.top_logprobs or 0) if body.logprobs else None


async def to_job(ctx: AppContext, body: ChatCompletionRequest) -> OcrRequest:
    """Validate the request, resolve its documents and build the engine request."""
    jobs.check_model(ctx, body.model)
    sampling = jobs.sampling_params(
        ctx,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        max_tokens_param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop,
        seed=body.seed,
        adjustments=body,
        n=body.n,
        logprobs=_logprobs(body),
    )
    return await jobs.build_request(ctx, body.messages, body.ocr, sampling)


async def create_chat_completion(
    ctx: AppContext, body: ChatCompletionRequest, admission: AdmissionTicket
) -> ChatCompletion | EventStream:
    request = await to_job(ctx, body)
    record = await jobs.submit(ctx, request, admission)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventStream(_chunks(ctx, record, body.model, include_usage))
    result = await jobs.collect(ctx, record)
    logprobs = None
    if request.sampling.logprobs is not None:
        logprobs = ChoiceLogprobs(content=token_logprobs(ctx.token_texts, result_tokens(result)))
    message = AssistantMessage(content=result.text)
    return ChatCompletion(
        id=f"chatcmpl-{record.id}",
        created=int(record.created_at),
        model=body.model,
        choices=[Choice(index=0, message=message, finish_reason=result.finish_reason, logprobs=logprobs)],
        usage=UsageInfo.of(result.usage),
        ocr_pages=ocr_pages(result),
    )


async def _chunks(ctx: AppContext, record: JobRecord, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(choices: list[ChunkChoice], **fields: Any) -> bytes:
        return frame(
            ChatCompletionChunk(
                id=f"chatcmpl-{record.id}", created=int(record.created_at), model=model, choices=choices, **fields
            )
        )

    yield chunk([ChunkChoice(index=0, delta=Delta(role="assistant", content=""))])
    async for event in jobs.follow(ctx, record):
        match event:
            case TextDelta(text=text, logprobs=tokens) if text or tokens:
                logprobs = ChoiceLogprobs(content=token_logprobs(ctx.token_texts, tokens)) if tokens else None
                yield chunk([ChunkChoice(index=0, delta=Delta(content=text), logprobs=logprobs)])
            case JobCompleted(result=result):
                finish = ChunkChoice(index=0, delta=Delta(), finish_reason=result.finish_reason)
                yield chunk([finish], ocr_pages=ocr_pages(result))
                if include_usage:
                    yield chunk([], usage=UsageInfo.of(result.usage))
            case JobFailed(error=error):
                yield frame(jobs.stream_error(error))
    yield DONE

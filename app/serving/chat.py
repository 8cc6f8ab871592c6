"""Chat completions: request → OCR job → one reply, or an SSE stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.context import AppContext
from app.protocol.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
)
from app.protocol.common import UsageInfo
from app.serving import jobs
from app.serving.sse import DONE, EventStream, frame
from ocr_engine.request import OcrRequest
from workers.events import JobCompleted, JobFailed, TextDelta
from workers.jobs import JobRecord


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
    )
    return await jobs.build_request(ctx, body.messages, body.ocr, sampling)


async def create_chat_completion(ctx: AppContext, body: ChatCompletionRequest) -> ChatCompletion | EventStream:
    request = await to_job(ctx, body)
    record = await jobs.submit(ctx, request)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventStream(_chunks(ctx, record, body.model, include_usage))
    result = await jobs.collect(ctx, record)
    return ChatCompletion(
        id=f"chatcmpl-{record.id}",
        created=int(record.created_at),
        model=body.model,
        choices=[Choice(index=0, message=AssistantMessage(content=result.text), finish_reason=result.finish_reason)],
        usage=UsageInfo.of(result.usage),
    )


async def _chunks(ctx: AppContext, record: JobRecord, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: Delta, finish_reason: str | None = None) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)
        return frame(
            ChatCompletionChunk(
                id=f"chatcmpl-{record.id}", created=int(record.created_at), model=model, choices=[choice]
            )
        )

    yield chunk(Delta(role="assistant", content=""))
    async for event in jobs.follow(ctx, record):
        match event:
            case TextDelta(text=text) if text:
                yield chunk(Delta(content=text))
            case JobCompleted(result=result):
                yield chunk(Delta(), result.finish_reason)
                if include_usage:
                    usage = UsageInfo.of(result.usage)
                    yield frame(
                        ChatCompletionChunk(
                            id=f"chatcmpl-{record.id}",
                            created=int(record.created_at),
                            model=model,
                            choices=[],
                            usage=usage,
                        )
                    )
            case JobFailed(error=error):
                yield frame(jobs.stream_error(error))
    yield DONE

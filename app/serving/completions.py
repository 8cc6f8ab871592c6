"""Text completions: a plain prompt answered by the decoder, as one reply or an SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.context import AppContext
from app.errors import ApiError
from app.protocol.common import UsageInfo
from app.protocol.completions import Completion, CompletionChoice, CompletionRequest
from app.serving import jobs
from app.serving.prompt_limit import check_prompt_length
from app.serving.sse import DONE, EventStream, frame
from ocr_engine.request import OcrRequest
from workers.events import JobCompleted, JobFailed, TextDelta
from workers.jobs import JobRecord


async def to_job(ctx: AppContext, body: CompletionRequest) -> OcrRequest:
    jobs.check_model(ctx, body.model)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise ApiError(400, "exactly one prompt is supported", code="unsupported_value", param="prompt")
    sampling = jobs.sampling_params(
        ctx,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop,
        seed=body.seed,
        adjustments=body,
        n=body.n,
    )
    await check_prompt_length(ctx, prompts[0], param="prompt")
    return OcrRequest(prompt=prompts[0], sampling=sampling, output_format="raw")


async def create_completion(ctx: AppContext, body: CompletionRequest) -> Completion | EventStream:
    request = await to_job(ctx, body)
    record = await jobs.submit(ctx, request)
    echo = request.prompt if body.echo else ""
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _chunks(ctx, record, body.model, echo, include_usage)
        return EventStream(stream)
    result = await jobs.collect(ctx, record)
    choice = CompletionChoice(index=0, text=echo + result.text, finish_reason=result.finish_reason)
    return Completion(
        id=f"cmpl-{record.id}",
        created=int(record.created_at),
        model=body.model,
        choices=[choice],
        usage=UsageInfo.of(result.usage),
    )


async def _chunks(
    ctx: AppContext, record: JobRecord, model: str, echo: str, include_usage: bool
) -> AsyncIterator[bytes]:
    def chunk(text: str, finish_reason: str | None = None, usage: UsageInfo | None = None) -> bytes:
        choices = [] if usage else [CompletionChoice(index=0, text=text, finish_reason=finish_reason)]
        return frame(
            Completion(
                id=f"cmpl-{record.id}",
                created=int(record.created_at),
                model=model,
                choices=choices,
                usage=usage,
            )
        )

    if echo:
        yield chunk(echo)
    async for event in jobs.follow(ctx, record):
        match event:
            case TextDelta(text=text) if text:
                yield chunk(text)
            case JobCompleted(result=result):
                yield chunk("", result.finish_reason)
                if include_usage:
                    yield chunk("", usage=UsageInfo.of(result.usage))
            case JobFailed(error=error):
                yield frame(jobs.stream_error(error))
    yield DONE

"""Text completions: a plain prompt (text or token ids) answered by the decoder, as one reply or an SSE stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

from app.admission.guard import AdmissionTicket
from app.context import AppContext
from app.errors import ApiError
from app.protocol.common import UsageInfo
from app.protocol.completions import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest
from app.serving import jobs
from app.serving.logprobs import legacy_logprobs, result_tokens
from app.serving.prompt_limit import check_prompt_length, check_prompt_tokens
from app.serving.sse import DONE, EventStream, frame
from ocr_engine.request import OcrRequest
from workers.events import JobCompleted, JobFailed, TextDelta
from workers.jobs import JobRecord


def _one_prompt(body: CompletionRequest) -> str | list[int]:
    """The request's prompt: text or token ids, given alone or as a list of one (each prompt needs a choice of
    its own, and only n=1 is served)."""
    prompt = body.prompt
    if isinstance(prompt, str):
        return prompt
    ids = [item for item in prompt if isinstance(item, int)]
    if len(ids) == len(prompt):
        return ids
    if len(prompt) != 1:
        raise ApiError(
            400,
            f"exactly one prompt is supported (a text, or a list of token ids), got a list of {len(prompt)}",
            code="unsupported_value",
            param="prompt",
        )
    return cast(str | list[int], prompt[0])  # one id alone is a list of ids, returned above


def _check_token_ids(ctx: AppContext, ids: list[int]) -> None:
    vocab = len(ctx.model.tokenizer)
    if bad := [token for token in ids if token >= vocab]:
        raise ApiError(
            400,
            f"prompt token ids must be from 0 to {vocab - 1}, got {', '.join(map(str, bad[:5]))}",
            code="invalid_value",
            param="prompt",
        )
    check_prompt_tokens(ctx, len(ids), param="prompt")


async def to_job(ctx: AppContext, body: CompletionRequest) -> OcrRequest:
    jobs.check_model(ctx, body.model)
    if body.echo and body.logprobs is not None:
        raise ApiError(
            400,
            "logprobs with echo would need the prompt's log probabilities, which this server does not compute",
            code="unsupported_value",
            param="logprobs",
        )
    prompt = _one_prompt(body)
    sampling = jobs.sampling_params(
        ctx,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop,
        seed=body.seed,
        adjustments=body,
        n=body.n,
        logprobs=body.logprobs,
    )
    if isinstance(prompt, str):
        await check_prompt_length(ctx, prompt, param="prompt")
        return OcrRequest(prompt=prompt, sampling=sampling, output_format="raw")
    _check_token_ids(ctx, prompt)
    text = await asyncio.to_thread(
        ctx.model.tokenizer.decode, prompt, skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return OcrRequest(prompt=text, prompt_token_ids=tuple(prompt), sampling=sampling, output_format="raw")


async def create_completion(
    ctx: AppContext, body: CompletionRequest, admission: AdmissionTicket
) -> Completion | EventStream:
    request = await to_job(ctx, body)
    record = await jobs.submit(ctx, request, admission)
    echo = request.prompt if body.echo else ""
    logprobs_wanted = request.sampling.logprobs is not None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventStream(_chunks(ctx, record, body.model, echo, include_usage))
    result = await jobs.collect(ctx, record)
    logprobs = legacy_logprobs(ctx.token_texts, result_tokens(result)) if logprobs_wanted else None
    choice = CompletionChoice(index=0, text=echo + result.text, finish_reason=result.finish_reason, logprobs=logprobs)
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
    def chunk(
        text: str,
        finish_reason: str | None = None,
        usage: UsageInfo | None = None,
        logprobs: CompletionLogprobs | None = None,
    ) -> bytes:
        choice = CompletionChoice(index=0, text=text, finish_reason=finish_reason, logprobs=logprobs)
        return frame(
            Completion(
                id=f"cmpl-{record.id}",
                created=int(record.created_at),
                model=model,
                choices=[] if usage else [choice],
                usage=usage,
            )
        )

    if echo:
        yield chunk(echo)
    async for event in jobs.follow(ctx, record):
        match event:
            case TextDelta(text=text, logprobs=tokens) if text or tokens:
                yield chunk(text, logprobs=legacy_logprobs(ctx.token_texts, tokens) if tokens else None)
            case JobCompleted(result=result):
                yield chunk("", result.finish_reason)
                if include_usage:
                    yield chunk("", usage=UsageInfo.of(result.usage))
            case JobFailed(error=error):
                yield frame(jobs.stream_error(error))
    yield DONE

"""/tokenize and /detokenize with the served model's tokenizer."""

from __future__ import annotations

import asyncio

from app.context import AppContext
from app.errors import ApiError
from app.protocol.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from app.serving.inputs import message_text
from app.serving.jobs import check_model
from app.serving.prompt_limit import check_prompt_chars
from ocr_engine.prompts import text_prompt


async def tokenize(ctx: AppContext, body: TokenizeRequest) -> TokenizeResponse:
    """The text's tokens, on a thread; a text longer than any prompt the model could hold is refused untokenized."""
    check_model(ctx, body.model)
    if (body.prompt is None) == (body.messages is None):
        raise ApiError(400, "send exactly one of prompt or messages", param="prompt")
    text = (
        body.prompt
        if body.prompt is not None
        else text_prompt([(m.role, message_text(m)) for m in body.messages or ()])
    )
    check_prompt_chars(ctx, text, param="prompt" if body.prompt is not None else "messages")
    tokens = await asyncio.to_thread(
        lambda: ctx.model.tokenizer(text, add_special_tokens=body.add_special_tokens).input_ids
    )
    return TokenizeResponse(count=len(tokens), max_model_len=ctx.model.max_model_len, tokens=tokens)


async def detokenize(ctx: AppContext, body: DetokenizeRequest) -> DetokenizeResponse:
    """The ids' text, on a thread (the schema has them >= 0; the vocabulary bounds them above)."""
    check_model(ctx, body.model)
    vocab = len(ctx.model.tokenizer)
    if bad := [t for t in body.tokens if t >= vocab]:
        raise ApiError(400, f"token ids out of range 0..{vocab - 1}: {bad[:5]}", param="tokens")
    return DetokenizeResponse(prompt=await asyncio.to_thread(ctx.model.tokenizer.decode, body.tokens))

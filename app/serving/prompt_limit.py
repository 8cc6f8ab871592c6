"""The prompt against the model's length, checked before anything is queued, so a refused prompt costs the model
thread nothing: its characters first (free, and a bound on the tokenizer's memory), then its tokens on a thread."""

from __future__ import annotations

import asyncio

from app.context import AppContext
from ocr_engine.errors import LimitExceeded
from ocr_engine.prompts import IMAGE_PLACEHOLDER


def check_prompt_chars(ctx: AppContext, text: str, *, param: str) -> None:
    """No token stands for more than `max_token_chars` characters, so a longer text cannot fit in any case."""
    limit = ctx.model.max_prompt_chars()
    if len(text) > limit:
        raise LimitExceeded(
            f"the prompt has {len(text):,} characters: more than the {ctx.model.max_model_len:,} tokens of the"
            f" model's length can hold (at most {limit:,} characters); send a shorter prompt",
            param=param,
        )


async def check_prompt_length(ctx: AppContext, prompt: str, *, image_tokens: int = 0, param: str) -> None:
    """`prompt` (its `<image>` placeholder standing for a page's `image_tokens`) must leave the model room to answer:
    the engine refuses a sequence of the model's length or more. Tokens are counted as the engine counts them
    (special tokens included), on a thread."""
    check_prompt_chars(ctx, prompt, param=param)
    tokens = await asyncio.to_thread(lambda: len(ctx.model.tokenizer(prompt, add_special_tokens=True).input_ids))
    if image_tokens:
        tokens += image_tokens - prompt.count(IMAGE_PLACEHOLDER)
    check_prompt_tokens(ctx, tokens, image_tokens=image_tokens, param=param)


def check_prompt_tokens(ctx: AppContext, tokens: int, *, image_tokens: int = 0, param: str) -> None:
    """A prompt of `tokens` tokens (`image_tokens` of them a page's) must be shorter than the model's length."""
    limit = ctx.model.max_model_len
    if tokens >= limit:
        pages = f" ({image_tokens:,} of them the largest page's image tokens)" if image_tokens else ""
        mostly_image = image_tokens * 2 > tokens
        remedy = "use a mode with fewer image tokens or a lower dpi" if mostly_image else "send a shorter prompt"
        raise LimitExceeded(
            f"the prompt has {tokens:,} tokens{pages}; the model's length is {limit:,} tokens"
            f" (max_model_len), and the answer needs room in it; {remedy}",
            param=param,
        )

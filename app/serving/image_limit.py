"""OCRSERVE_MAX_IMAGE_TOKENS: a request's vision tokens, counted from its page sizes before the job is queued."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.context import AppContext
from ocr_engine.errors import LimitExceeded
from ocr_engine.image_tokens import request_image_tokens
from ocr_engine.request import Document


async def check_image_tokens(ctx: AppContext, documents: Sequence[Document], *, mode: str, dpi: int) -> int:
    """The vision tokens the engine will give the request's pages (PDF pages are measured, not rendered, on a
    thread); over the limit it raises LimitExceeded, so nothing is queued. Returns the largest page's count."""
    if not documents:
        return 0
    counts = await asyncio.to_thread(
        request_image_tokens,
        documents,
        family=ctx.model.family,
        mode=mode,
        dpi=dpi,
        geometry=ctx.model.geometry,
        limits=ctx.settings.document_limits,
    )
    total, limit = sum(counts), ctx.settings.max_image_tokens
    if total > limit:
        noun = "page comes" if len(counts) == 1 else "pages come"
        raise LimitExceeded(
            f"the request's {len(counts)} {noun} to {total:,} image tokens in mode {mode!r}; the limit is {limit:,}"
            f" image tokens per request (OCRSERVE_MAX_IMAGE_TOKENS={limit}); send fewer pages, or use a lower dpi"
            " or a mode with fewer tokens"
        )
    return max(counts, default=0)

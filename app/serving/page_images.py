"""A background response's page images: each page as the model was given it, the pixels its layout boxes are in
(the playground draws the boxes over them)."""

from __future__ import annotations

import asyncio
import io

from app.context import AppContext
from app.errors import ApiError
from app.serving.responses.objects import find
from ocr_engine.documents import page_image
from ocr_engine.request import OcrRequest


def _png(request: OcrRequest, index: int, ctx: AppContext) -> bytes:
    image = page_image(request.documents, index, request.dpi, ctx.settings.document_limits)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # fast: it is sent once, over a local network
    return out.getvalue()


async def page_png(ctx: AppContext, response_id: str, page: int) -> bytes:
    """PNG of page `page` (1-based, as the layout output numbers them) of a response's documents."""
    record = await find(ctx, response_id)
    request = await ctx.dispatcher.request(record.id)
    if request is None:
        raise ApiError(
            404,
            "this response's documents are not kept: page images exist for background responses with layout "
            'output (`"ocr": {"output_format": "layout"}`) while they are stored, for others only while they run',
            code="page_not_found",
            param="page",
        )
    if not 1 <= page <= request.page_total:
        raise ApiError(
            404,
            f"the response has {request.page_total} pages; there is no page {page}",
            code="page_not_found",
            param="page",
        )
    return await asyncio.to_thread(_png, request, page - 1, ctx)

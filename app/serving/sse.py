"""OpenAI-style server-sent events: `data: <json>` frames and a closing `data: [DONE]`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar.response import Stream

DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def frame(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


class EventStream(Stream):
    """An SSE response; keeps `text/event-stream` even when returned from a route whose default is JSON."""

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        return super().to_asgi_response(*args, **{**kwargs, "media_type": self.media_type})

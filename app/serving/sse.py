"""OpenAI-style server-sent events: `data: <json>` frames and a closing `data: [DONE]`."""

from __future__ import annotations

from typing import Any

import msgspec

DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def frame(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"

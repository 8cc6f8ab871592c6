"""Decode inline document payloads: plain base64 or a data URL, as clients of the OpenAI API send them."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

from ocr_engine.errors import InvalidInput

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def decode_base64_payload(value: str, *, param: str) -> bytes:
    """Bytes of `value`: base64 (standard or urlsafe; whitespace, missing padding tolerated) or a data URL."""
    text = value.strip()
    if text[:5].lower() == "data:":
        header, comma, body = text[5:].partition(",")
        if not comma:
            raise InvalidInput(f"{param} is not a valid data URL: it has no ',' before the data", param=param)
        if header.rsplit(";", 1)[-1].strip().lower() != "base64":
            return _require_data(unquote_to_bytes(body), param)
        text = body
    return _require_data(_b64decode(text, param), param)


def _b64decode(text: str, param: str) -> bytes:
    compact = "".join(text.split()).translate(_URLSAFE_TO_STANDARD)
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise InvalidInput(f"{param} is not valid base64", param=param) from exc


def _require_data(data: bytes, param: str) -> bytes:
    if not data:
        raise InvalidInput(f"{param} is empty", param=param)
    return data

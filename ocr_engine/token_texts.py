"""The text and UTF-8 bytes of single tokens, as OpenAI's log probabilities report them.

DeepSeek's tokenizers are byte-level BPE: a vocabulary entry spells bytes with GPT-2's printable stand-ins, so a
token may hold part of a character. Its bytes are read back from the stand-ins, and its text is those bytes
decoded (a partial character shows as U+FFFD; the bytes let a client join the pieces). Added tokens (`<|ref|>`…)
and tokenizers that are not byte-level give their decoded text and its bytes.
"""

from __future__ import annotations

from typing import Any


def _byte_stand_ins() -> dict[str, int]:
    """GPT-2's map from the printable character standing for each byte back to the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in chars:
            chars[byte] = chr(256 + shifted)
            shifted += 1
    return {char: byte for byte, char in chars.items()}


def _is_byte_level(tokenizer: Any) -> bool:
    """Whether the tokenizer's decoder is (or includes) byte-level BPE's: read off its description, cheaply."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    return decoder is not None and "ByteLevel(" in repr(decoder)


class TokenTexts:
    """Token id → (text, bytes), worked out once per id."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._stand_ins = _byte_stand_ins() if _is_byte_level(tokenizer) else None
        self._added = set(getattr(tokenizer, "added_tokens_decoder", {}))
        self._known: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        known = self._known.get(token_id)
        if known is None:
            known = self._known[token_id] = self._work_out(token_id)
        return known

    def _work_out(self, token_id: int) -> tuple[str, list[int]]:
        stand_ins = self._stand_ins
        if stand_ins is not None and token_id not in self._added:
            piece = self._tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and all(char in stand_ins for char in piece):
                raw = bytes(stand_ins[char] for char in piece)
                return raw.decode("utf-8", errors="replace"), list(raw)
        text = self._tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return text, list(text.encode())

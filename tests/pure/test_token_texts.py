"""Single tokens' text and bytes, as logprobs report them, on the byte-level tokenizer the tiny checkpoints use."""

from __future__ import annotations

import pytest

from ocr_engine.testing import build_tokenizer
from ocr_engine.token_texts import TokenTexts


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_the_bytes_of_the_tokens_of_a_text_join_to_its_utf8(tokenizer) -> None:
    texts = TokenTexts(tokenizer)
    text = "Größe — 42 ✓ invoice"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = [texts(token) for token in ids]
    assert b"".join(bytes(raw) for _, raw in pieces) == text.encode()
    assert any("\ufffd" in piece for piece, _ in pieces)  # a character split over tokens: its pieces say so
    assert all(piece == bytes(raw).decode("utf-8", errors="replace") for piece, raw in pieces)


def test_added_tokens_are_their_own_text(tokenizer) -> None:
    texts = TokenTexts(tokenizer)
    ref = tokenizer.convert_tokens_to_ids("<|ref|>")
    assert texts(ref) == ("<|ref|>", list(b"<|ref|>"))

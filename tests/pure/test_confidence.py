"""OCR confidence: which tokens count for a page and for each block, and the figures made of them."""

from __future__ import annotations

import json
import math

import pytest

from ocr_engine.confidence import TokenTrace
from ocr_engine.grounding import text_spans
from ocr_engine.layout import render_page

# A grounded page as the model writes it, token by token (probability of each token beside it). The empty piece
# is the first byte of "é": a token that writes nothing until the next one completes the character.
TOKENS = [
    ("<|ref|>", 0.99),
    ("title", 0.98),
    ("<|/ref|>", 0.97),
    ("<|det|>", 0.96),
    ("[[100, 50, 899, 120]]", 0.01),  # box coordinates: never counted, however unsure
    ("<|/det|>", 0.95),
    ("\n# Annual", 0.5),
    (" report", 0.25),
    ("\n\n", 0.75),
    ("<|ref|>", 0.94),
    ("text", 0.02),  # a block label: not counted either
    ("<|/ref|>", 0.93),
    ("<|det|>", 0.92),
    ("[[1, 2, 3, 4]]", 0.03),
    ("<|/det|>", 0.91),
    ("\nBody", 0.8),
    ("", 0.4),
    ("é", 0.6),
    ("\n", 1.0),
]
RAW = "".join(text for text, _ in TOKENS)


def trace_of(tokens: list[tuple[str, float]]) -> TokenTrace:
    trace = TokenTrace()
    for text, probability in tokens:
        trace.add(math.log(probability), text)
    return trace


def test_only_the_text_tokens_of_a_page_count() -> None:
    trace = trace_of(TOKENS)
    assert trace.tokens_in(text_spans(RAW)) == [6, 7, 8, 15, 16, 17, 18]
    confidence = trace.confidence(text_spans(RAW))
    assert confidence is not None
    assert confidence.tokens == 7
    assert confidence.mean == pytest.approx((0.5 + 0.25 + 0.75 + 0.8 + 0.4 + 0.6 + 1.0) / 7)
    assert confidence.min == pytest.approx(0.25)


def test_each_layout_block_gets_the_confidence_of_its_own_text() -> None:
    page = json.loads(render_page(1, RAW, (1000, 1000), trace_of(TOKENS)))
    title, body = page["blocks"]
    assert title["confidence"] == {"mean": pytest.approx(0.5), "min": pytest.approx(0.25), "tokens": 3}
    assert body["confidence"] == {"mean": pytest.approx(0.7), "min": pytest.approx(0.4), "tokens": 4}
    assert page["confidence"]["tokens"] == 7


def test_text_before_the_first_block_counts_for_the_page() -> None:
    tokens = [("Header", 0.5), ("<|ref|>", 0.9), ("text", 0.9), ("<|/ref|>", 0.9), ("body", 0.1)]
    raw = "".join(text for text, _ in tokens)
    confidence = trace_of(tokens).confidence(text_spans(raw))
    assert confidence is not None and confidence.tokens == 2 and confidence.min == pytest.approx(0.1)


def test_a_page_without_text_has_no_confidence() -> None:
    tokens = [("<|ref|>", 0.9), ("image", 0.9), ("<|/ref|>", 0.9), ("<|det|>", 0.9), ("[[1, 2, 3, 4]]", 0.9)]
    raw = "".join(text for text, _ in tokens)
    assert trace_of(tokens).confidence(text_spans(raw)) is None
    assert TokenTrace().confidence(text_spans("")) is None


def test_text_released_at_the_end_belongs_to_the_last_token() -> None:
    trace = trace_of([("a", 0.5), ("", 0.25)])
    trace.extend_last("\ufffd")  # a character the page ended in the middle of
    assert trace.tokens_in([(1, 2)]) == [1]

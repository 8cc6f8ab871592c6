"""The engine's token log probabilities and page confidences in OpenAI's shapes.

Chat and the Responses API list each token with its text, bytes and alternatives (`TokenLogprob`); completions
use the legacy columns, whose `text_offset` counts characters of the choice's text, so a stream keeps its count
from one chunk to the next (`LegacyLogprobs`).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from app.protocol.common import OcrPage, PageConfidence, TokenLogprob, TopLogprob
from app.protocol.completions import CompletionLogprobs
from ocr_engine import results
from ocr_engine.token_texts import TokenTexts


def token_logprobs(texts: TokenTexts, tokens: Iterable[results.TokenLogprob]) -> list[TokenLogprob]:
    entries = []
    for token in tokens:
        text, raw = texts(token.token_id)
        top = [TopLogprob(token=texts(i)[0], logprob=value, bytes=texts(i)[1]) for i, value in token.top]
        entries.append(TokenLogprob(token=text, logprob=token.logprob, bytes=raw, top_logprobs=top))
    return entries


def result_tokens(result: results.OcrResult) -> list[results.TokenLogprob]:
    """Every page's tokens in page order (none where the request did not ask for them)."""
    return [token for page in result.pages for token in page.logprobs or ()]


class LegacyLogprobs:
    """Completions' legacy columns, chunk after chunk: text offsets go on from where the last chunk ended."""

    def __init__(self, texts: TokenTexts) -> None:
        self.texts = texts
        self.offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def columns(self, tokens: Iterable[results.TokenLogprob]) -> CompletionLogprobs:
        columns = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        for token in tokens:
            text, raw = self.texts(token.token_id)
            columns.tokens.append(text)
            columns.token_logprobs.append(token.logprob)
            columns.top_logprobs.append(
                {text: token.logprob} | {self.texts(i)[0]: value for i, value in token.top if self.texts(i)[0] != text}
            )
            columns.text_offset.append(self.offset)
            self.offset += len(self._decoder.decode(bytes(raw)))
        return columns


def ocr_pages(result: results.OcrResult) -> list[OcrPage]:
    return [
        OcrPage(
            page=page.index + 1,
            finish_reason=page.finish_reason,
            confidence=None
            if page.confidence is None
            else PageConfidence(mean=page.confidence.mean, min=page.confidence.min, tokens=page.confidence.tokens),
        )
        for page in result.pages
    ]

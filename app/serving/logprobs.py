"""The engine's token log probabilities and page confidences in OpenAI's shapes.

Chat and the Responses API list each token with its text, bytes and alternatives (`TokenLogprob`); completions
use the legacy columns, whose `text_offset` is where each token's text starts in the choice's text (the page's
raw text: a completion is one page in the `raw` format), as the engine placed it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from app.protocol.common import OcrPage, PageConfidence, TokenLogprob, TopLogprob
from app.protocol.completions import CompletionLogprobs
from ocr_engine import results
from ocr_engine.token_texts import TokenTexts


def _alternative(texts: TokenTexts, token_id: int, logprob: float) -> TopLogprob:
    text, raw = texts(token_id)
    return TopLogprob(token=text, logprob=logprob, bytes=raw)


def token_logprobs(texts: TokenTexts, tokens: Iterable[results.TokenLogprob]) -> list[TokenLogprob]:
    entries = []
    for token in tokens:
        text, raw = texts(token.token_id)
        top = [_alternative(texts, token_id, logprob) for token_id, logprob in token.top]
        entries.append(TokenLogprob(token=text, logprob=token.logprob, bytes=raw, top_logprobs=top))
    return entries


def result_tokens(result: results.OcrResult) -> list[results.TokenLogprob]:
    """Every page's tokens in page order (none where the request did not ask for them)."""
    return [token for page in result.pages for token in page.logprobs or ()]


def legacy_logprobs(texts: TokenTexts, tokens: Iterable[results.TokenLogprob]) -> CompletionLogprobs:
    """Completions' columns, for a whole choice or one chunk."""
    columns = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    for token in tokens:
        text = texts(token.token_id)[0]
        columns.tokens.append(text)
        columns.token_logprobs.append(token.logprob)
        alternatives = ((texts(i)[0], value) for i, value in token.top)
        columns.top_logprobs.append({text: token.logprob} | {t: value for t, value in alternatives if t != text})
        columns.text_offset.append(token.offset)
    return columns


def ocr_pages(result: results.OcrResult) -> list[OcrPage]:
    return [
        OcrPage(
            page=page.index + 1,
            finish_reason=page.finish_reason,
            confidence=None if page.confidence is None else PageConfidence(**msgspec.structs.asdict(page.confidence)),
        )
        for page in result.pages
    ]

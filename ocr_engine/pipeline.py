"""One OCR job end to end: pages produced lazily, batched through the engine, text streamed in page order.

Every consumer (sync replies, SSE, background polling, the CLI) sees the same ordered deltas, and the final
text of a page is exactly the concatenation of its deltas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

from PIL import Image

from ocr_engine.detokenize import IncrementalDetokenizer
from ocr_engine.documents import DocumentLimits, iter_document_pages
from ocr_engine.engine import OcrEngine
from ocr_engine.grounding import MarkdownStreamCleaner
from ocr_engine.layout import LayoutFormatter, PageSize
from ocr_engine.models.base import PreparedSequence
from ocr_engine.modes import resolve_mode
from ocr_engine.prefetch import BatchPrefetcher
from ocr_engine.prompts import image_prompt
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, PageResult, Usage
from ocr_engine.sampling import make_generator
from ocr_engine.stopping import StopMatcher


class OcrListener:
    """Receives progress of a job; override what you need. `cancelled` is polled between decode steps."""

    def on_delta(self, page: int, text: str) -> None:
        """Text for `page`, in document order (the page separator is sent as part of the next page)."""

    def on_page(self, page: PageResult, pages_total: int) -> None:
        """A page is finished."""

    def cancelled(self) -> bool:
        return False


class _Formatter(Protocol):
    """Turns a page's raw text into the requested output format, delta by delta."""

    def feed(self, raw: str) -> str: ...

    def finish(self) -> str: ...


class _Verbatim:
    """The `raw` format: the model's text as it comes."""

    def feed(self, raw: str) -> str:
        return raw

    def finish(self) -> str:
        return ""


def _formatter(request: OcrRequest, index: int, size: PageSize | None) -> _Formatter:
    if request.output_format == "layout":
        return LayoutFormatter(index + 1, size)
    return MarkdownStreamCleaner() if request.output_format == "markdown" else _Verbatim()


def _page_separator(request: OcrRequest) -> str:
    """Layout pages are self-contained JSON lines, each ending in a newline: nothing goes between them."""
    return "" if request.output_format == "layout" else request.page_separator


class _PageText:
    """raw token ids → text → stop sequences → the output format, for one page."""

    def __init__(self, engine: OcrEngine, request: OcrRequest, formatter: _Formatter) -> None:
        adapter = engine.adapter
        skip = {adapter.eos_token_id, adapter.pad_token_id, adapter.tokenizer.bos_token_id}
        self.detokenizer = IncrementalDetokenizer(adapter.tokenizer, skip_token_ids=skip - {None})
        self.stop = StopMatcher(request.sampling.stop)
        self.formatter = formatter
        self.raw: list[str] = []
        self.text: list[str] = []

    def push(self, token: int) -> str:
        return self._format(self.stop.feed(self.detokenizer.push(token)))

    def finish(self) -> str:
        tail = "" if self.stop.stopped else self.stop.feed(self.detokenizer.flush()) + self.stop.finish()
        text = self._format(tail)
        rest = self.formatter.finish()
        self.text.append(rest)
        return text + rest

    def _format(self, raw: str) -> str:
        self.raw.append(raw)
        text = self.formatter.feed(raw)
        self.text.append(text)
        return text


class _InOrder:
    """Releases page deltas in page order, buffering pages of a batch that run ahead of an unfinished one."""

    def __init__(self, listener: OcrListener, separator: str) -> None:
        self.listener = listener
        self.separator = separator
        self.current = 0
        self.pending: dict[int, list[str]] = {}
        self.finished: set[int] = set()

    def delta(self, page: int, text: str) -> None:
        if page == self.current:
            self.listener.on_delta(page, text)
        else:
            self.pending.setdefault(page, []).append(text)

    def page_done(self, page: int, pages_total: int) -> None:
        self.finished.add(page)
        while self.current in self.finished and self.current + 1 < pages_total:
            self.current += 1
            if text := self.separator + "".join(self.pending.pop(self.current, [])):  # never an empty delta
                self.listener.on_delta(self.current, text)


class _Page(NamedTuple):
    """A page ready for the model, and the size of its image before the model resizes it (None: no image)."""

    size: PageSize | None
    sequence: PreparedSequence


def _page_inputs(request: OcrRequest, limits: DocumentLimits) -> Iterator[tuple[str, Image.Image | None]]:
    if not request.documents:
        yield request.prompt, None
        return
    prompt = image_prompt(request.prompt)
    for document in request.documents:
        for image in iter_document_pages(document, request.dpi, limits):
            yield prompt, image


def run_ocr(
    engine: OcrEngine, request: OcrRequest, *, limits: DocumentLimits, listener: OcrListener | None = None
) -> OcrResult:
    """OCR every selected page of every document (or answer a text-only prompt) and join the pages."""
    listener = listener or OcrListener()
    adapter = engine.adapter
    pages_total = max(request.page_total, 1)
    generator = make_generator(request.sampling, adapter.device)
    separator = _page_separator(request)
    ordered = _InOrder(listener, separator)
    results: list[PageResult] = []
    mode = resolve_mode(adapter.family, request.mode)

    def prepare(item: tuple[str, Image.Image | None]) -> _Page:
        prompt, image = item
        return _Page(image.size if image else None, adapter.prepare(prompt, image, mode))

    prefetcher = BatchPrefetcher(prepare, engine.prepare_workers)
    for pages in prefetcher.run(_page_inputs(request, limits), engine.batch_size):
        first = len(results)
        texts = [
            _PageText(engine, request, _formatter(request, first + row, page.size)) for row, page in enumerate(pages)
        ]

        def on_token(row: int, token: int, texts: list[_PageText] = texts, first: int = first) -> bool:
            if delta := texts[row].push(token):
                ordered.delta(first + row, delta)
            return texts[row].stop.stopped

        outputs = engine.generate(
            [page.sequence for page in pages],
            request.sampling,
            on_token=on_token,
            cancelled=listener.cancelled,
            generator=generator,
        )
        for row, (text, output, prepared) in enumerate(zip(texts, outputs, pages, strict=True)):
            if tail := text.finish():
                ordered.delta(first + row, tail)
            width, height = prepared.size or (None, None)
            page = PageResult(
                index=first + row,
                text="".join(text.text),
                raw_text="".join(text.raw),
                width=width,
                height=height,
                finish_reason=output.finish_reason,
                usage=Usage(prompt_tokens=output.prompt_tokens, completion_tokens=len(output.token_ids)),
            )
            results.append(page)
            ordered.page_done(page.index, pages_total)
            listener.on_page(page, pages_total)
    usage = Usage()
    for page in results:
        usage.add(page.usage)
    return OcrResult(
        text=separator.join(page.text for page in results),
        pages=results,
        usage=usage,
        finish_reason="length" if any(p.finish_reason == "length" for p in results) else "stop",
    )

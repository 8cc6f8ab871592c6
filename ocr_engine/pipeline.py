"""One OCR job end to end: pages produced lazily, decoded in the engine's shared batch, text streamed in page order.

Every consumer (sync replies, SSE, background polling, the CLI) sees the same ordered deltas, and the final
text of a page is exactly the concatenation of its deltas.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from queue import Empty, SimpleQueue
from typing import Any, NamedTuple, Protocol

import msgspec
from PIL import Image

from ocr_engine.confidence import TokenTrace
from ocr_engine.detokenize import IncrementalDetokenizer
from ocr_engine.documents import DocumentLimits, iter_document_pages
from ocr_engine.engine import OcrEngine
from ocr_engine.errors import JobCancelled
from ocr_engine.grounding import MarkdownStreamCleaner, text_spans
from ocr_engine.layout import LayoutFormatter, PageSize
from ocr_engine.models.base import PreparedSequence
from ocr_engine.modes import resolve_mode
from ocr_engine.prefetch import BatchPrefetcher
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, PageResult, TokenLogprob, Usage
from ocr_engine.rows import BACKGROUND, INTERACTIVE, Row, RowEnd
from ocr_engine.sampling import make_generator
from ocr_engine.stopping import StopMatcher

CANCEL_POLL_S = 0.1  # how often a running job asks whether it was cancelled (a Redis read in Celery mode)
FLUSH_S = 0.05  # text deltas are sent at most this often per job (one Redis write per page in Celery mode)


class OcrListener:
    """Receives progress of a job; override what you need. `cancelled` is polled between decode steps."""

    def on_delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        """Text for `page`, in document order (the page separator is sent as part of the next page), and the
        tokens counted since the last delta with their log probabilities when the request asks for them (a
        delta may carry tokens and no text: text held back, or a layout page, written whole at its end)."""

    def on_page(self, page: PageResult, pages_total: int) -> None:
        """A page is finished (told as it finishes: pages finish in any order, though their text comes in order)."""

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


def _formatter(request: OcrRequest, index: int, size: PageSize | None, trace: TokenTrace) -> _Formatter:
    if request.output_format == "layout":
        return LayoutFormatter(index + 1, size, trace)
    return MarkdownStreamCleaner() if request.output_format == "markdown" else _Verbatim()


class _PageText:
    """raw token ids → text → stop sequences → the output format, for one page; `trace` records where each
    token's text went (for the page's confidence)."""

    def __init__(self, engine: OcrEngine, request: OcrRequest, formatter: _Formatter, trace: TokenTrace) -> None:
        adapter = engine.adapter
        self.skip = {adapter.eos_token_id, adapter.pad_token_id, adapter.tokenizer.bos_token_id} - {None}
        self.detokenizer = IncrementalDetokenizer(adapter.tokenizer, skip_token_ids=self.skip)
        self.stop = StopMatcher(request.sampling.stop)
        self.formatter = formatter
        self.trace = trace
        self.decoded = 0  # characters the detokenizer has given: where the next token's text starts
        self.raw: list[str] = []
        self.text: list[str] = []

    def push(self, token: TokenLogprob) -> str:
        piece = self.detokenizer.push(token.token_id)
        self.decoded += len(piece)
        if token.token_id not in self.skip:  # a pad or BOS the model wrote is no part of the page's text
            self.trace.add(token.logprob, piece)
        return self._format(self.stop.feed(piece))

    def finish(self) -> str:
        tail = ""
        if not self.stop.stopped:
            held = self.detokenizer.flush()
            self.trace.extend_last(held)
            tail = self.stop.feed(held) + self.stop.finish()
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
    """Releases page deltas in page order, holding back pages that run ahead of an unfinished one (pages of a job
    decode side by side and finish in any order). Pages an earlier run finished (`done`) are not run again:
    their whole text is sent when their turn comes (a reader of the job's events drops what it saw already)."""

    def __init__(self, listener: OcrListener, separator: str, pages_total: int, done: Mapping[int, PageResult]) -> None:
        self.listener = listener
        self.separator = separator
        self.pages_total = pages_total
        self.current = 0
        self.pending: dict[int, _Pending] = {}
        self.done = done
        self.finished: set[int] = set(done)
        if first := done.get(0):
            self._send(0, first.text, first.logprobs or [])
        self._advance()

    def delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        if page == self.current:
            self.listener.on_delta(page, text, logprobs)
        else:
            self.pending.setdefault(page, _Pending()).add(text, logprobs)

    def page_done(self, index: int) -> None:
        self.finished.add(index)
        self._advance()

    def _advance(self) -> None:
        while self.current in self.finished and self.current + 1 < self.pages_total:
            self.current += 1
            held = self.pending.pop(self.current, _Pending())
            if replayed := self.done.get(self.current):
                held.add(replayed.text, replayed.logprobs or [])
            self._send(self.current, self.separator + "".join(held.text), held.logprobs)

    def _send(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        if text or logprobs:  # never an empty delta
            self.listener.on_delta(page, text, logprobs)


class _Page(NamedTuple):
    """A page ready for the model, and the size of its image before the model resizes it (None: no image)."""

    size: PageSize | None
    sequence: PreparedSequence


def _page_inputs(
    request: OcrRequest, limits: DocumentLimits, skip: Collection[int]
) -> Iterator[tuple[int, str, Image.Image | None]]:
    """(index, prompt, image) of every page to run, in order; pages in `skip` are not even rasterized."""
    prompt = request.sequence_prompt
    if not request.documents:
        if 0 not in skip:
            yield 0, prompt, None
        return
    first = 0
    for document in request.documents:
        selected = document.selected_pages
        wanted = [index for index in range(first, first + len(selected)) if index not in skip]
        if wanted:
            chosen = msgspec.structs.replace(document, pages=tuple(selected[index - first] for index in wanted))
            for index, image in zip(wanted, iter_document_pages(chosen, request.dpi, limits), strict=True):
                yield index, prompt, image
        first += len(selected)


class _PageSink:
    """What the scheduler tells about one page's row, handed to the job's thread through its inbox. Also gives the
    job back its room for one more waiting page once this one's prefill starts (or it ends without one)."""

    def __init__(self, index: int, inbox: SimpleQueue[_Event], room: threading.Semaphore) -> None:
        self.index, self.inbox, self.room = index, inbox, room
        self.waiting = True

    def _admitted(self) -> None:
        if self.waiting:
            self.waiting = False
            self.room.release()

    def admitted(self, row: Row) -> None:
        self._admitted()

    def tokens(self, row: Row, tokens: list[TokenLogprob]) -> None:
        self.inbox.put((_TOKENS, self.index, (row, tokens)))

    def finished(self, row: Row, reason: RowEnd) -> None:
        self._admitted()
        self.inbox.put((_FINISHED, self.index, reason))

    def failed(self, row: Row, error: BaseException) -> None:
        self._admitted()
        self.inbox.put((_FAILED, self.index, error))


_PAGE, _TOKENS, _FINISHED, _FAILED, _END, _ERROR = range(6)
# What a job's inbox carries: (kind, page index or, for _END, the page count, what that kind carries).
_Event = tuple[int, int, Any]


class _Submitter:
    """The job's feeder: reads and prepares its pages in order (prefetched) and submits each to the engine's
    scheduler while the job has fewer than `ahead` pages waiting to start there."""

    def __init__(
        self,
        engine: OcrEngine,
        request: OcrRequest,
        limits: DocumentLimits,
        *,
        background: bool,
        skip: Collection[int],
    ) -> None:
        self.engine, self.request, self.limits, self.background = engine, request, limits, background
        self.skip = skip
        self.inbox: SimpleQueue[_Event] = SimpleQueue()
        self.rows: list[Row] = []
        self.stopping = threading.Event()
        self.room = threading.Semaphore(engine.pages_ahead)
        self.group = uuid.uuid4().hex
        self.thread = threading.Thread(target=self._run, name="ocr-submit", daemon=True)

    def _run(self) -> None:
        engine, request = self.engine, self.request
        adapter = engine.adapter
        mode = resolve_mode(adapter.family, request.mode)

        def prepare(item: tuple[int, str, Image.Image | None]) -> tuple[int, _Page]:
            index, prompt, image = item
            if image is None and request.prompt_token_ids is not None:
                return index, _Page(None, PreparedSequence(input_ids=list(request.prompt_token_ids)))
            return index, _Page(image.size if image else None, adapter.prepare(prompt, image, mode))

        count = 0
        inputs = _page_inputs(request, self.limits, self.skip)
        try:
            for ((count, page),) in BatchPrefetcher(prepare, engine.prepare_workers).run(inputs, 1):
                while not self.room.acquire(timeout=0.1):
                    if self.stopping.is_set():
                        return
                if self.stopping.is_set():
                    return
                self.inbox.put((_PAGE, count, page))
                row = engine.submit(
                    page.sequence,
                    request.sampling,
                    _PageSink(count, self.inbox, self.room),
                    generator=make_generator(request.sampling, adapter.device, request.first_page + count),
                    priority=BACKGROUND if self.background else INTERACTIVE,
                    group=self.group,
                )
                self.rows.append(row)
                if self.stopping.is_set():
                    row.cancel()
                    return
        except BaseException as exc:  # raised on the job's thread, in its turn
            self.inbox.put((_ERROR, count, exc))
            return
        self.inbox.put((_END, request.sequence_count, None))

    def stop(self) -> None:
        """Cancel every row of the job, and submit no more."""
        self.stopping.set()
        for row in list(self.rows):
            row.cancel()


class _Pending:
    """A page's text and tokens not sent yet."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.logprobs: list[TokenLogprob] = []

    def add(self, text: str, logprobs: list[TokenLogprob]) -> None:
        self.text.append(text)
        self.logprobs.extend(logprobs)


class _OpenPage:
    def __init__(self, engine: OcrEngine, request: OcrRequest, index: int, page: _Page) -> None:
        trace = TokenTrace()
        self.text = _PageText(engine, request, _formatter(request, index, page.size, trace), trace)
        self.size = page.size
        self.prompt_tokens = len(page.sequence.input_ids)
        self.completion_tokens = 0
        self.logprobs: list[TokenLogprob] | None = None if request.sampling.logprobs is None else []


def run_ocr(
    engine: OcrEngine,
    request: OcrRequest,
    *,
    limits: DocumentLimits,
    listener: OcrListener | None = None,
    background: bool = False,
    finished: Mapping[int, PageResult] | None = None,
) -> OcrResult:
    """OCR every selected page of every document (or answer a text-only prompt) and join the pages. The pages
    decode in the engine's running batch beside every other job's; this thread turns their tokens into text,
    sends their text at most every `FLUSH_S` (coalesced: one delta per page), checks for cancellation every
    `CANCEL_POLL_S` and raises what `listener.cancelled` raises. `finished` holds the pages an earlier run of the
    job finished (a job handed over to this worker): they are not run again, their text is sent again in turn."""
    listener = listener or OcrListener()
    finished = finished or {}
    separator = request.text_separator
    ordered = _InOrder(listener, separator, request.sequence_count, finished)
    results: list[PageResult] = list(finished.values())
    submitter = _Submitter(engine, request, limits, background=background, skip=finished)
    pages: dict[int, _OpenPage] = {}
    total: int | None = None
    next_check = next_flush = 0.0
    deltas: dict[int, _Pending] = {}  # text and tokens not sent yet, per page: sent every FLUSH_S, so coalesced
    submitter.thread.start()
    try:
        while total is None or len(results) < total:
            now = time.monotonic()
            if now >= next_check:
                if listener.cancelled():
                    raise JobCancelled("the job was cancelled")
                next_check = now + CANCEL_POLL_S
            wait = max(0.0, min(next_check, next_flush) - now) if deltas else next_check - now
            events: list[_Event] = []
            with contextlib.suppress(Empty):
                events.append(submitter.inbox.get(timeout=max(wait, 0.001)))
            while not submitter.inbox.empty():  # everything that came meanwhile
                events.append(submitter.inbox.get())
            for kind, index, value in events:
                if kind == _PAGE:
                    pages[index] = _OpenPage(engine, request, index, value)
                elif kind == _TOKENS:
                    row, tokens = value
                    _take_tokens(pages[index], row, tokens, deltas.setdefault(index, _Pending()))
                elif kind == _FINISHED:
                    _flush(ordered, index, deltas)
                    results.append(_finish_page(ordered, index, pages.pop(index), value))
                elif kind == _END:
                    total = index
                else:
                    raise value
            if deltas and time.monotonic() >= next_flush:
                for index in list(deltas):
                    _flush(ordered, index, deltas)
                next_flush = time.monotonic() + FLUSH_S
    finally:
        submitter.stop()
    results.sort(key=lambda page: page.index)
    usage = Usage()
    for page in results:
        usage.add(page.usage)
    return OcrResult(
        text=separator.join(page.text for page in results),
        pages=results,
        usage=usage,
        finish_reason="length" if any(p.finish_reason == "length" for p in results) else "stop",
    )


def _take_tokens(page: _OpenPage, row: Row, tokens: list[TokenLogprob], pending: _Pending) -> None:
    """Tokens up to a stop string count and show; the row is asked to stop there (it may run a step or two
    further before the scheduler sees that: those tokens are dropped)."""
    for token in tokens:
        if page.text.stop.stopped:
            return
        page.completion_tokens += 1
        start = page.text.decoded
        pending.text.append(page.text.push(token))
        if page.logprobs is not None:
            token = msgspec.structs.replace(token, offset=start)
            page.logprobs.append(token)
            pending.logprobs.append(token)
        if page.text.stop.stopped:
            row.stop()


def _flush(ordered: _InOrder, index: int, deltas: dict[int, _Pending]) -> None:
    pending = deltas.pop(index, None)
    if pending is not None and ((text := "".join(pending.text)) or pending.logprobs):
        ordered.delta(index, text, pending.logprobs)


def _finish_page(ordered: _InOrder, index: int, page: _OpenPage, end: RowEnd) -> PageResult:
    if tail := page.text.finish():
        ordered.delta(index, tail, [])
    raw_text = "".join(page.text.raw)
    width, height = page.size or (None, None)
    result = PageResult(
        index=index,
        text="".join(page.text.text),
        raw_text=raw_text,
        width=width,
        height=height,
        finish_reason="stop" if end == "stop" or page.text.stop.stopped else "length",
        usage=Usage(prompt_tokens=page.prompt_tokens, completion_tokens=page.completion_tokens),
        confidence=page.text.trace.confidence(text_spans(raw_text)),
        logprobs=page.logprobs,
    )
    ordered.listener.on_page(result, ordered.pages_total)  # now, not in turn: a finished page is kept at once
    ordered.page_done(index)
    return result

"""The Responses API's stream events, a pure function of the job's events replayed from the first: sequence
numbers are stable, so `?stream=true&starting_after=N` resumes a stream exactly."""

from __future__ import annotations

from typing import Any

from app.protocol.responses import (
    ContentPartAdded,
    ContentPartDone,
    OcrProgress,
    OutputItemAdded,
    OutputItemDone,
    OutputText,
    OutputTextDelta,
    OutputTextDone,
    ResponseCompleted,
    ResponseCreated,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    ResponseObject,
    ResponseStatus,
    StreamEvent,
)
from app.serving.logprobs import result_tokens, token_logprobs
from app.serving.responses.objects import message_item, snapshot, status_of
from app.serving.sse import frame
from ocr_engine.results import OcrResult
from ocr_engine.token_texts import TokenTexts
from workers.events import JobCancelled, JobCompleted, JobEvent, JobFailed, JobStarted, PageFinished, TextDelta
from workers.jobs import JobRecord


class ResponseEvents:
    """Maps the job's events, in order, to Responses API stream events (numbered from 0)."""

    def __init__(self, record: JobRecord, texts: TokenTexts) -> None:
        self.record = record
        self.texts = texts
        self.item_id = f"msg_{record.id}"
        self.sequence = 0
        self.started = False
        self.pages_done = 0
        self.pages_total = record.pages_total
        self.text: list[str] = []

    def _next(self, cls: type[StreamEvent], **fields: Any) -> StreamEvent:
        event = cls(sequence_number=self.sequence, **fields)
        self.sequence += 1
        return event

    def _snapshot(self, status: ResponseStatus, **fields: Any) -> ResponseObject:
        return snapshot(
            self.record,
            status,
            started=self.started,
            progress=OcrProgress(pages_done=self.pages_done, pages_total=self.pages_total),
            texts=self.texts,
            **fields,
        )

    def _ids(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}

    def created(self) -> list[StreamEvent]:
        return [self._next(ResponseCreated, response=self._snapshot("queued"))]

    def _start(self, pages_total: int) -> list[StreamEvent]:
        self.started, self.pages_total = True, pages_total
        return [
            self._next(ResponseInProgress, response=self._snapshot("in_progress")),
            self._next(OutputItemAdded, output_index=0, item=message_item(self.record, "in_progress", None)),
            self._next(ContentPartAdded, part=OutputText(text=""), **self._ids()),
        ]

    def map(self, event: JobEvent) -> list[StreamEvent]:
        match event:
            case JobStarted(pages_total=total):
                return self._start(total)
            case TextDelta(text=text, logprobs=tokens) if text or tokens:
                self.text.append(text)
                logprobs = token_logprobs(self.texts, tokens)
                return [self._next(OutputTextDelta, delta=text, logprobs=logprobs, **self._ids())]
            case PageFinished(pages_done=done):
                self.pages_done = done
            case JobCompleted(result=result):
                return self._complete(result)
            case JobFailed(error=error):
                text = "".join(self.text)
                return [self._next(ResponseFailed, response=self._snapshot("failed", text=text, error=error))]
            case JobCancelled():
                # no `response.cancelled` event in the SDK: `response.incomplete` whose response says `cancelled`
                response = self._snapshot("cancelled", text="".join(self.text))
                return [self._next(ResponseIncomplete, response=response)]
        return []

    def _complete(self, result: OcrResult) -> list[StreamEvent]:
        events = [] if self.started else self._start(self.pages_total)
        status = status_of(result)
        final = ResponseCompleted if status == "completed" else ResponseIncomplete
        logprobs = token_logprobs(self.texts, result_tokens(result))
        part = OutputText(text=result.text, logprobs=logprobs)
        return [
            *events,
            self._next(OutputTextDone, text=result.text, logprobs=logprobs, **self._ids()),
            self._next(ContentPartDone, part=part, **self._ids()),
            self._next(OutputItemDone, output_index=0, item=message_item(self.record, status, result.text, logprobs)),
            self._next(final, response=self._snapshot(status, text=result.text, result=result)),
        ]


def sse(event: StreamEvent) -> bytes:
    """A stream event as an SSE frame, named by its type (as OpenAI's are)."""
    return b"event: " + str(type(event).__struct_config__.tag).encode() + b"\n" + frame(event)

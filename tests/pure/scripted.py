"""A dispatcher for in-process tests of the HTTP layer: jobs live in the real memory store and end as each test
scripts them, without a model, so routes, error mappings and event mappings are exercised in milliseconds.

Not a model stand-in: what the model writes is tested end to end (tests/e2e) through real loading and
generation; here only what the API makes of a job's events is under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ocr_engine.request import OcrRequest
from ocr_engine.results import FinishReason, OcrResult, PageResult, TokenLogprob, Usage
from workers.dispatch import EngineStatus, Readiness
from workers.events import JobCompleted, JobError, JobEvent, JobFailed, JobStarted, PageFinished, TextDelta
from workers.job_service import Jobs
from workers.jobs import JobRecord
from workers.memory_store import MemoryJobStore
from workers.registry import SwitchResult, WorkerInfo

Script = Callable[[OcrRequest], Sequence[JobEvent]]


def page(index: int, text: str, finish: FinishReason = "stop", tokens: int = 3) -> PageResult:
    return PageResult(
        index=index,
        text=text,
        raw_text=text,
        finish_reason=finish,
        usage=Usage(prompt_tokens=10, completion_tokens=tokens),
    )


def completed(*texts: str, finish: FinishReason = "stop", logprobs: list[TokenLogprob] | None = None) -> Script:
    """A job that writes each text as a page (a delta each), then completes."""

    def script(request: OcrRequest) -> list[JobEvent]:
        pages = [page(index, text, finish) for index, text in enumerate(texts)]
        separator = request.text_separator
        usage = Usage()
        for each in pages:
            usage.add(each.usage)
        events: list[JobEvent] = [JobStarted(pages_total=len(pages))]
        for each in pages:
            delta = (separator if each.index else "") + each.text
            events.append(TextDelta(page=each.index, text=delta, logprobs=logprobs or []))
            done = PageFinished(
                page=each.index, pages_done=each.index + 1, pages_total=len(pages), finish_reason=finish, result=each
            )
            events.append(done)
        result = OcrResult(text=separator.join(texts), pages=pages, usage=usage, finish_reason=finish)
        return [*events, JobCompleted(result=result)]

    return script


def failed(error: JobError, *, after: str = "") -> Script:
    """A job that fails, having written `after` first."""

    def script(request: OcrRequest) -> list[JobEvent]:
        started: list[JobEvent] = [JobStarted(pages_total=1)]
        return [*started, *([TextDelta(page=0, text=after)] if after else []), JobFailed(error=error)]

    return script


def waiting(request: OcrRequest) -> list[JobEvent]:
    """A job that stays queued (until the test adds its events to `dispatcher.memory`)."""
    return []


class ScriptedQueue:
    """Plays each queued job's script at once."""

    def __init__(self, store: MemoryJobStore, script: Script) -> None:
        self.store, self.script = store, script
        self.submitted: list[OcrRequest] = []

    async def put(self, record: JobRecord) -> None:
        request = await self.store.request(record.id)
        assert request is not None
        self.submitted.append(request)
        for event in self.script(request):
            self.store.add(record.id, event)

    async def revoke(self, job_id: str) -> None:
        pass


class ScriptedDispatcher(Jobs):
    """The Dispatcher protocol over the memory store; `submitted` holds the requests the API built."""

    @property
    def submitted(self) -> list[OcrRequest]:
        return self.scripted.submitted

    def __init__(self, script: Script | None = None, *, readiness: Readiness = Readiness.READY) -> None:
        self.memory = MemoryJobStore()
        self.scripted = ScriptedQueue(self.memory, script or completed("Hello"))
        super().__init__(self.memory, self.scripted)
        self.readiness = readiness
        self.queued = {False: 0, True: 0}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def status(self) -> EngineStatus:
        return EngineStatus(readiness=self.readiness, message=f"the test says {self.readiness.value}")

    async def queued_pages(self, background: bool) -> int:
        return self.queued[background]

    async def workers(self) -> list[WorkerInfo]:
        return []

    async def switch_device(self, device: str, worker_id: str | None = None) -> list[SwitchResult]:
        return []

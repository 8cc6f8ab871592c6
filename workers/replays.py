"""A job handed to another worker runs again, all but the pages its earlier runs finished (their `PageFinished`
events carry them), whose text it sends again in turn: its event stream then holds some pages' text twice.
Readers get it once: after a `JobRequeued`, the new run's text is dropped up to what each page had already
sent, and a second `JobStarted` is dropped too. The filter is a pure function of the stream from its start, so
replays (`starting_after`) see exactly what live readers saw.

A finished page's text is sent again as it was, so the stream and the result agree on it. The page a worker
was lost in runs again: greedy decoding (the default) on the same model gives the same text, so the new run
continues the old one; with sampling it may differ, and the stream then keeps that page's old beginning and
new rest, while the job's result (sync replies, polls) has the new run's page.
"""

from __future__ import annotations

from workers.events import JobEvent, JobRequeued, JobStarted, TextDelta


class ReplayFilter:
    def __init__(self) -> None:
        self._sent: dict[int, int] = {}  # characters each page has sent
        self._rerun: dict[int, int] | None = None  # characters each page produced since the last requeue
        self._started = False

    def __call__(self, event: JobEvent) -> JobEvent | None:
        """The event as readers should see it; None to drop it."""
        match event:
            case JobRequeued():
                self._rerun = {}
            case JobStarted() if self._started:
                return None
            case JobStarted():
                self._started = True
            case TextDelta(page=page, text=text) if self._rerun is not None:
                before = self._rerun.get(page, 0)
                self._rerun[page] = before + len(text)
                skip = self._sent.get(page, 0) - before
                if skip >= len(text):
                    return None
                if skip > 0:
                    event = TextDelta(page=page, text=text[skip:])
                self._sent[page] = self._rerun[page]
            case TextDelta(page=page, text=text):
                self._sent[page] = self._sent.get(page, 0) + len(text)
        return event

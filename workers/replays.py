"""A job handed to another worker runs again, all but the pages its earlier runs finished (their `PageFinished`
events carry them), whose text it sends again in turn: its event stream then holds some pages' text twice.
Readers get it once: after a `JobRequeued`, the new run's text is dropped up to what each page had already
sent, and a second `JobStarted` is dropped too. The filter is a pure function of the stream from its start, so
replays (`starting_after`) see exactly what live readers saw.

A finished page's text is sent again as it was, so the stream and the result agree on it. The page a worker
was lost in runs again and gives the same text (greedy decoding is deterministic; a sampled job is seeded when
it is queued: workers.celery_dispatch), so the new run continues the old one. Were it to differ (another kind
of device), the stream would keep that page's old beginning and new rest, and the result the new run's page.
"""

from __future__ import annotations

from workers.events import JobEvent, JobRequeued, JobStarted, TextDelta


class ReplayFilter:
    """Characters and tokens (a delta's log probabilities) are counted apart, per page: a delta may carry
    tokens whose text is still held back."""

    def __init__(self) -> None:
        self._sent: dict[int, tuple[int, int]] = {}  # (characters, tokens) each page has sent
        self._rerun: dict[int, tuple[int, int]] | None = None  # what each page produced since the last requeue
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
            case TextDelta(page=page, text=text, logprobs=tokens) if self._rerun is not None:
                chars, count = self._rerun.get(page, (0, 0))
                self._rerun[page] = (chars + len(text), count + len(tokens))
                sent_chars, sent_count = self._sent.get(page, (0, 0))
                text, tokens = text[max(sent_chars - chars, 0) :], tokens[max(sent_count - count, 0) :]
                if not (text or tokens):
                    return None
                event = TextDelta(page=page, text=text, logprobs=tokens)
                self._sent[page] = (
                    max(sent_chars, self._rerun[page][0]),
                    max(sent_count, self._rerun[page][1]),
                )
            case TextDelta(page=page, text=text, logprobs=tokens):
                chars, count = self._sent.get(page, (0, 0))
                self._sent[page] = (chars + len(text), count + len(tokens))
        return event

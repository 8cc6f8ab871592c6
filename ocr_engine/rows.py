"""One sequence in the running batch, as the scheduler and the job that submitted it both see it.

The job thread submits a row and is told what happens to it through its `RowSink`, on the model thread; it
reads nothing else of the row. It may ask the row to stop (a stop string was reached) or to be cancelled: both
are flags that the scheduler honours at its next step boundary.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from ocr_engine.models.base import PreparedSequence
from ocr_engine.request import SamplingParams
from ocr_engine.results import TokenLogprob

RowEnd = Literal["stop", "length", "cancelled"]
INTERACTIVE, BACKGROUND = 0, 1
_arrivals = itertools.count()


class RowSink(Protocol):
    """Called on the model thread: must be quick and must not raise (hand the news to another thread)."""

    def admitted(self, row: Row) -> None:
        """The row's prefill started: its page's pixels are no longer needed."""

    def tokens(self, row: Row, tokens: list[TokenLogprob]) -> None:
        """Tokens the row generated, with their log probabilities (EOS is never one of them)."""

    def finished(self, row: Row, reason: RowEnd) -> None:
        """The row left the batch; nothing more comes for it."""

    def failed(self, row: Row, error: BaseException) -> None:
        """The row could not run (its page failed to encode, or the model failed); nothing more comes for it."""


@dataclass(eq=False)
class Row:
    """`budget` is the most tokens it may generate; `group` names its job, for fair sharing of the batch."""

    sequence: PreparedSequence
    params: SamplingParams
    budget: int
    sink: RowSink
    generator: torch.Generator | None = None
    priority: int = INTERACTIVE
    group: str = ""
    arrival: int = field(default_factory=lambda: next(_arrivals))
    submitted_at: float = field(default_factory=time.monotonic)
    stop_requested: bool = False
    cancel_requested: bool = False
    # the scheduler's own state
    slot: int = -1
    length: int = 0  # positions of its slot holding keys and values
    embeds: torch.Tensor | None = None  # while its prompt is being prefilled
    generated: int = 0
    last_token: int = -1
    output_counts: Counter[int] = field(default_factory=Counter)  # kept for rows whose params adjust scores

    @property
    def prompt_tokens(self) -> int:
        return len(self.sequence.input_ids)

    @property
    def reservation(self) -> int:
        """Cache positions it may need: its prompt and every token it may generate."""
        return self.prompt_tokens + self.budget

    def stop(self) -> None:
        self.stop_requested = True

    def cancel(self) -> None:
        self.cancel_requested = True

"""The engine: one model, one scheduler thread that owns it, and the settings every job's pages share.

Jobs submit pages as rows (`submit`); the scheduler decodes the rows of every job together and tells each job
what happened to its rows through their sinks (see `ocr_engine.rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from ocr_engine.errors import LimitExceeded, ModelUnavailable
from ocr_engine.models.base import ModelAdapter, PreparedSequence
from ocr_engine.placement import Placement, move_model
from ocr_engine.repetition import NoRepeatNGramGuard
from ocr_engine.request import SamplingParams
from ocr_engine.rows import INTERACTIVE, Row, RowSink
from ocr_engine.scheduler import Scheduler, SchedulerLimits, SchedulerStats

REPETITION_EXEMPT_TOKENS = ("<td>", "</td>")
KvBudget = Callable[[torch.device, torch.dtype], int | None]
"""The KV cache positions the running batch may hold with the model on a device, in a dtype (None: no bound)."""


class OcrEngine:
    def __init__(
        self,
        adapter: ModelAdapter,
        *,
        limits: SchedulerLimits | None = None,
        prepare_workers: int = 2,
        ngram_size: int = 30,
        window_size: int = 90,
    ):
        self.adapter = adapter
        self.prepare_workers = prepare_workers
        # pages of one job prepared and waiting to start: enough to keep the prepare workers and the model busy
        self.pages_ahead = max(2, prepare_workers)
        vocab = adapter.tokenizer.get_vocab()
        exempt = [vocab[token] for token in REPETITION_EXEMPT_TOKENS if token in vocab]
        guard = NoRepeatNGramGuard(ngram_size=ngram_size, window_size=window_size, exempt_token_ids=exempt)
        self.scheduler = Scheduler(adapter, guard, limits or SchedulerLimits())

    def row_budget(self, prompt_tokens: int, params: SamplingParams) -> int:
        """How many tokens a sequence may generate: `max_tokens`, capped by what is left of the model length."""
        room = self.adapter.max_model_len - prompt_tokens
        if room <= 0:
            raise LimitExceeded(
                f"the prompt has {prompt_tokens} tokens; the model's length is {self.adapter.max_model_len}"
            )
        return room if params.max_tokens is None else min(params.max_tokens, room)

    def submit(
        self,
        sequence: PreparedSequence,
        params: SamplingParams,
        sink: RowSink,
        *,
        generator: torch.Generator | None = None,
        priority: int = INTERACTIVE,
        group: str = "",
    ) -> Row:
        """Queue one sequence for the running batch; its tokens and its end reach `sink` on the model thread."""
        row = Row(
            sequence=sequence,
            params=params,
            budget=self.row_budget(len(sequence.input_ids), params),
            sink=sink,
            generator=generator,
            priority=priority,
            group=group,
        )
        self.scheduler.submit(row)
        return row

    def stats(self) -> SchedulerStats:
        return self.scheduler.stats()

    def close(self) -> None:
        self.scheduler.close()

    def move_to(self, device: torch.device, dtype: torch.dtype, kv_budget: KvBudget | None = None) -> None:
        """Move the model to `device` (floating-point weights cast to `dtype`) between two decode steps, the
        running rows' cache with it: they go on where they were. `kv_budget` gives the KV cache budget on the new
        device, worked out once the model is there (a GPU's free memory, say). A move that fails halfway, or
        whose budget cannot be had, is undone and its error raised; ModelUnavailable when even the undoing
        fails."""
        self.scheduler.call(lambda: self._move(device, dtype, kv_budget))

    def _move(self, device: torch.device, dtype: torch.dtype, kv_budget: KvBudget | None) -> None:
        adapter = self.adapter
        previous, before = adapter.device, Placement.of(adapter.model)
        try:
            move_model(adapter.model, device, dtype)
            self.scheduler.move_state(device, dtype)
            if kv_budget is not None:
                self.scheduler.limits = replace(self.scheduler.limits, kv_cache_tokens=kv_budget(device, dtype))
        except Exception as exc:
            try:
                before.restore()
                self.scheduler.move_state(previous, adapter.dtype)
            except Exception as undo:
                raise ModelUnavailable(
                    f"moving the model to {device} failed ({exc}) and so did moving it back ({undo})"
                ) from undo
            raise
        finally:
            if previous.type == "cuda" or device.type == "cuda":
                torch.cuda.empty_cache()
        adapter.device, adapter.dtype = device, dtype

"""Iteration-level scheduling: one model thread, one running batch shared by every job of the process.

Each iteration: run what other threads asked of the model (a device move), drop rows that were cancelled or
stopped, admit waiting rows while slots and the KV budget allow, decode every running row once, then prefill
waiting rows under a per-step token budget. A row's prompt is prefilled in chunks of `prefill_chunk` tokens with
fixed boundaries, so the same page is computed the same way whatever runs beside it, and a long prompt holds the
running rows up for one chunk per step, not for the whole prompt.

Who goes first: interactive rows before background ones; among those, the job with fewest admitted rows (so one
job's pages cannot take every slot while others wait); then arrival order. `interactive_reserve` slots (and as
large a share of the KV budget) are never given to background rows, so an interactive page gets in at the next
step boundary even while background pages fill the rest; a background row that has waited `aging_s` counts as
interactive, so nothing starves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import torch

from ocr_engine.decoder import SlotDecoder
from ocr_engine.errors import LimitExceeded, ModelUnavailable
from ocr_engine.logits import adjust_scores
from ocr_engine.models.base import ModelAdapter, PreparedSequence
from ocr_engine.repetition import NoRepeatNGramGuard
from ocr_engine.results import TokenLogprob
from ocr_engine.rows import BACKGROUND, INTERACTIVE, Row, RowEnd
from ocr_engine.sampling import sample_rows
from ocr_engine.token_logprobs import token_logprobs

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_TOKEN = -1  # fills the repetition window of a row that has generated fewer tokens than the window holds


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    """`kv_cache_tokens` bounds slots × slot length (None: only `max_num_seqs` bounds the batch)."""

    max_num_seqs: int = 16
    kv_cache_tokens: int | None = None
    prefill_chunk: int = 2048
    interactive_reserve: int = 1
    aging_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1 or self.prefill_chunk < 1:
            raise ValueError(
                "OCRSERVE_MAX_NUM_SEQS and OCRSERVE_MAX_PREFILL_TOKENS must be at least 1, "
                f"got {self.max_num_seqs} and {self.prefill_chunk}"
            )
        if self.interactive_reserve < 0 or 0 < self.max_num_seqs <= self.interactive_reserve:
            raise ValueError(f"an interactive reserve of {self.interactive_reserve} leaves background rows no slot")


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    running: int
    prefilling: int
    waiting: int
    kv_cache_tokens: int  # allocated positions, all slots together
    kv_cache_budget: int | None


class Scheduler:
    def __init__(self, adapter: ModelAdapter, guard: NoRepeatNGramGuard, limits: SchedulerLimits) -> None:
        self.adapter = adapter
        self.guard = guard
        self.limits = limits
        self.decoder = SlotDecoder(adapter)
        self._waiting: list[Row] = []
        self._prefilling: list[Row] = []  # admitted, in order; the first may be part-way through its prompt
        self._running: list[Row] = []  # decoding; row i holds slot i
        self._history = torch.empty((0, guard.window_size), dtype=torch.long, device=adapter.device)
        self._commands: list[tuple[Callable[[], object], Future[object]]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._step_started: float | None = None  # when the iteration in progress began (None: between them)
        self._thread = threading.Thread(target=self._loop, name="ocr-model", daemon=True)
        self._thread.start()

    # ---- called from other threads ------------------------------------------------------------------------
    def submit(self, row: Row) -> None:
        """Queue a row; what happens to it reaches its sink. Raises LimitExceeded for a row that cannot fit the
        KV budget even alone."""
        budget = self._background_kv_budget() if row.priority == BACKGROUND else self.limits.kv_cache_tokens
        if budget is not None and row.reservation > budget:
            raise LimitExceeded(
                f"the page needs {row.reservation} cache positions (its prompt and max_tokens); the KV cache "
                f"gives a {'background' if row.priority == BACKGROUND else 'interactive'} page at most {budget} "
                "(OCRSERVE_KV_CACHE_TOKENS)"
            )
        with self._wake:
            if self._closed:
                raise ModelUnavailable("the model is shutting down")
            self._waiting.append(row)
            self._wake.notify()

    def call(self, work: Callable[[], T]) -> T:
        """Run `work` on the model thread between two steps (rows in flight stay where they are) and return what
        it returns, or raise what it raised."""
        future: Future[T] = Future()
        with self._wake:
            if self._closed:
                raise ModelUnavailable("the model is shutting down")
            self._commands.append((work, future))  # type: ignore[arg-type]
            self._wake.notify()
        return future.result()

    def stats(self) -> SchedulerStats:
        with self._wake:
            waiting, prefilling, running = len(self._waiting), len(self._prefilling), len(self._running)
        return SchedulerStats(running, prefilling, waiting, self.decoder.cache.tokens, self.limits.kv_cache_tokens)

    def stalled_for(self) -> float:
        """Seconds the iteration in progress has run (0 between iterations): a wedged accelerator call shows here,
        since job threads give up on their own time limits while the model thread stays stuck."""
        started = self._step_started
        return 0.0 if started is None else time.monotonic() - started

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    # ---- the model thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (self._closed or self._commands or self._waiting or self._prefilling or self._running):
                        self._wake.wait()
                    if self._closed:
                        break
                    commands, self._commands = self._commands, []
                for work, future in commands:
                    self._run_command(work, future)
                self._step_started = time.monotonic()
                try:
                    self._iterate()
                except Exception as exc:  # never let the model thread die: the rows in flight fail, others go on
                    log.exception("a scheduler step failed; the rows in the batch fail")
                    self._fail_batch(exc)
                finally:
                    self._step_started = None
        self._fail_everything(ModelUnavailable("the model is shutting down"))

    def _iterate(self) -> None:
        self._drop_leaving_rows()
        self._admit()
        if self._running:
            self._decode_step()
        if self._prefilling:
            self._prefill_step()
        if not (self._running or self._prefilling):
            self.decoder.cache.release()

    def _fail_batch(self, error: BaseException) -> None:
        """Fail the running rows and the one part-way through its prompt; rows not started stay queued."""
        failed = list(self._running)
        if self._prefilling and self._prefilling[0].slot >= 0:
            failed.append(self._prefilling.pop(0))
        self._running = []
        for row in failed:
            row.embeds, row.slot = None, -1
            row.sink.failed(row, error)
        self.decoder.cache.release()

    @staticmethod
    def _run_command(work: Callable[[], object], future: Future[object]) -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    def _fail_everything(self, error: BaseException) -> None:
        with self._wake:
            rows = self._waiting + self._prefilling + self._running
            self._waiting, self._prefilling, self._running = [], [], []
            commands, self._commands = self._commands, []
        for row in rows:
            row.sink.failed(row, error)
        for _, future in commands:
            future.set_exception(error)

    def _drop_leaving_rows(self) -> None:
        with self._wake:
            gone = [row for row in self._waiting if row.cancel_requested]
            self._waiting = [row for row in self._waiting if not row.cancel_requested]
        for row in gone:
            row.sink.finished(row, "cancelled")
        for row in [row for row in self._prefilling if row.cancel_requested]:
            self._prefilling.remove(row)
            row.embeds = None
            row.sink.finished(row, "cancelled")
        leaving = [row for row in self._running if row.cancel_requested or row.stop_requested]
        for row in leaving:
            self._finish(row, "cancelled" if row.cancel_requested else "stop")

    def _admit(self) -> None:
        limits = self.limits
        with self._wake:
            while self._waiting:
                admitted = self._running + self._prefilling
                now = time.monotonic()
                counts: dict[str, int] = {}
                for row in admitted:
                    counts[row.group] = counts.get(row.group, 0) + 1
                background = sum(1 for row in admitted if row.priority == BACKGROUND)
                chosen = None
                for row in sorted(self._waiting, key=lambda r: self._rank(r, counts, now)):
                    if len(admitted) >= limits.max_num_seqs:
                        return
                    interactive = row.priority == INTERACTIVE
                    if not interactive and background >= limits.max_num_seqs - limits.interactive_reserve:
                        continue  # the reserved slots are for interactive rows
                    kv_budget = limits.kv_cache_tokens if interactive else self._background_kv_budget()
                    if kv_budget is not None and self._kv_needed(admitted, row) > kv_budget:
                        if interactive:
                            return  # wait for room; FIFO among equals
                        continue
                    chosen = row
                    break
                if chosen is None:
                    return
                self._waiting.remove(chosen)
                self._prefilling.append(chosen)

    def _rank(self, row: Row, counts: dict[str, int], now: float) -> tuple[int, int, int]:
        """Interactive first (a background row that waited `aging_s` ranks with them, though it never takes the
        reserved slots), then the job with fewest admitted rows, then arrival."""
        aged = now - row.submitted_at >= self.limits.aging_s
        return (0 if row.priority == INTERACTIVE or aged else 1, counts.get(row.group, 0), row.arrival)

    def _kv_needed(self, admitted: list[Row], row: Row) -> int:
        """Positions the cache holds once `row` joins: every slot allocated (or needed) at the length the longest
        admitted row needs, never shorter than the slots already are."""
        cache = self.decoder.cache
        longest = max([r.reservation for r in admitted] + [row.reservation])
        return max(cache.slots, len(admitted) + 1) * cache.capacity_for(longest)

    def _background_kv_budget(self) -> int | None:
        limits = self.limits
        if limits.kv_cache_tokens is None:
            return None
        return limits.kv_cache_tokens * (limits.max_num_seqs - limits.interactive_reserve) // limits.max_num_seqs

    def _decode_step(self) -> None:
        rows = self._running
        device = self.adapter.device
        tokens = torch.tensor([row.last_token for row in rows], device=device)
        positions = torch.tensor([row.length for row in rows], device=device)
        try:
            logits = self.decoder.decode(tokens, positions)
            history = self._history[: len(rows)]
            scores = adjust_scores(self.guard(history, logits), rows, self.adapter.eos_token_id)
            picked = sample_rows(scores, [row.params for row in rows], [row.generator for row in rows])
            self._history[: len(rows)] = torch.cat([history[:, 1:], picked[:, None]], dim=1)
            chosen = token_logprobs(logits, picked, rows)
        except Exception as exc:
            log.exception("a decode step failed; its %d rows fail", len(rows))
            self._fail_batch(exc)  # the row part-way through its prompt too: its slot follows theirs
            return
        done: list[tuple[Row, RowEnd]] = []
        for row, token in zip(rows, chosen, strict=True):
            row.length += 1
            end = self._take(row, token)
            if end is not None:
                done.append((row, end))
        for row, end in done:
            self._finish(row, end)

    def _take(self, row: Row, sampled: TokenLogprob) -> RowEnd | None:
        """A freshly sampled token of a row; why the row ends with it, if it does."""
        token = sampled.token_id
        if token == self.adapter.eos_token_id:
            return "stop"
        row.generated += 1
        row.last_token = token
        if row.params.adjusts_scores:
            row.output_counts[token] += 1
        row.sink.tokens(row, [sampled])
        return "length" if row.generated >= row.budget else None

    def _finish(self, row: Row, end: RowEnd) -> None:
        """Take a running row out of the batch: the last row moves into its slot."""
        last = self._running[-1]
        if last is not row:
            self.decoder.cache.move(last.slot, row.slot, last.length)
            self._history[row.slot] = self._history[last.slot]
            last.slot = row.slot
            self._running[row.slot] = last
        self._running.pop()
        row.slot = -1
        if self._prefilling and self._prefilling[0].slot >= 0:  # the row part-way through its prompt follows
            partial = self._prefilling[0]
            target = len(self._running)
            if partial.slot != target:
                self.decoder.cache.move(partial.slot, target, partial.length)
                partial.slot = target
        row.sink.finished(row, end)

    def _prefill_step(self) -> None:
        chunk = self.limits.prefill_chunk
        spent = 0
        while self._prefilling:
            row = self._prefilling[0]
            if row.slot < 0 and not self._start_prefill(row):
                self._prefilling.pop(0)
                continue
            assert row.embeds is not None
            end = min(row.prompt_tokens, (row.length // chunk + 1) * chunk)
            if spent and spent + end - row.length > chunk:
                return
            try:
                logits = self.decoder.prefill(row.slot, row.embeds[row.length : end], row.length)
                first = None
                if end == row.prompt_tokens:
                    scores = adjust_scores(logits[None], [row], self.adapter.eos_token_id)
                    picked = sample_rows(scores, [row.params], [row.generator])
                    first = token_logprobs(logits[None], picked, [row])[0]
            except Exception as exc:
                log.exception("prefill of a page failed")
                self._prefilling.pop(0)
                row.embeds = None
                row.sink.failed(row, exc)
                continue
            spent += end - row.length
            row.length = end
            if end < row.prompt_tokens:
                continue
            self._prefilling.pop(0)
            row.embeds = None
            assert first is not None
            ending = self._take(row, first)
            if ending is None:
                self._history[row.slot] = NO_TOKEN  # the guard's window: this row's first token, nothing else's
                self._history[row.slot, -1] = row.last_token
                self._running.append(row)
            else:
                row.slot = -1
                row.sink.finished(row, ending)

    def _start_prefill(self, row: Row) -> bool:
        """Encode the row's page and give it the slot after the running rows; False if it failed."""
        slot = len(self._running)
        try:
            cache = self.decoder.cache
            longest = max([r.reservation for r in self._running] + [row.reservation])
            cache.reserve(self._slots_to_allocate(slot + 1, longest), longest, [r.length for r in self._running])
            if self._history.shape[0] < cache.slots:
                grown = torch.full((cache.slots, self.guard.window_size), NO_TOKEN, dtype=torch.long)
                grown = grown.to(self.adapter.device)
                grown[: self._history.shape[0]] = self._history
                self._history = grown
            self._history[slot] = NO_TOKEN
            row.embeds = self.adapter.embed(row.sequence)
        except Exception as exc:
            log.exception("a page could not be encoded")
            row.sink.failed(row, exc)
            return False
        row.sequence = PreparedSequence(input_ids=row.sequence.input_ids)  # encoded: the row lets its pixels go
        row.slot, row.length = slot, 0
        row.sink.admitted(row)
        return True

    def _slots_to_allocate(self, needed: int, longest: int) -> int:
        """Slots grow by doubling (few reallocations), never past `max_num_seqs` nor what the budget holds."""
        cache, limits = self.decoder.cache, self.limits
        if needed <= cache.slots:
            return needed
        slots = min(max(needed, 2 * cache.slots), limits.max_num_seqs)
        if limits.kv_cache_tokens is not None:
            slots = min(slots, limits.kv_cache_tokens // cache.capacity_for(longest))
        return max(slots, needed)

    def move_state(self, device: torch.device, dtype: torch.dtype) -> None:
        """Carry the running rows' state to another device (on the model thread, between steps)."""
        self.decoder.cache.to(device, dtype)
        self._history = self._history.to(device)
        for row in self._prefilling:
            if row.embeds is not None:
                row.embeds = row.embeds.to(device=device, dtype=dtype)

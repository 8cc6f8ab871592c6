"""The generation loop: one prefill for a batch of pages, then decode steps with a KV cache.

Our own loop rather than `generate()`: it streams every row of a batch through a per-token callback, checks
for cancellation between steps, lets a row stop early (stop strings), and applies the repetition guard to
generated tokens only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ocr_engine.errors import JobCancelled, LimitExceeded, ModelUnavailable
from ocr_engine.models.base import ModelAdapter, PreparedSequence
from ocr_engine.placement import Placement, move_model
from ocr_engine.repetition import NoRepeatNGramGuard
from ocr_engine.request import SamplingParams
from ocr_engine.results import FinishReason
from ocr_engine.sampling import sample_next

# Called with (row, token id) for each generated token; returning True ends that row there ("stop").
TokenCallback = Callable[[int, int], bool]
CancelCheck = Callable[[], bool]
REPETITION_EXEMPT_TOKENS = ("<td>", "</td>")


@dataclass(slots=True)
class SequenceOutput:
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int


class OcrEngine:
    """Runs batches of prepared sequences through a model adapter."""

    def __init__(
        self,
        adapter: ModelAdapter,
        *,
        batch_size: int = 4,
        prepare_workers: int = 2,
        ngram_size: int = 30,
        window_size: int = 90,
    ):
        self.adapter = adapter
        self.batch_size = batch_size
        self.prepare_workers = prepare_workers
        vocab = adapter.tokenizer.get_vocab()
        exempt = [vocab[token] for token in REPETITION_EXEMPT_TOKENS if token in vocab]
        self.guard = NoRepeatNGramGuard(ngram_size=ngram_size, window_size=window_size, exempt_token_ids=exempt)
        self.window_size = window_size
        # Held for a whole batch: moving the model to another device waits for the batch in flight. A move
        # holds the turnstile while it waits, so the next batch queues behind it instead of overtaking it.
        self._device_lock = threading.Lock()
        self._turnstile = threading.Lock()

    def row_budget(self, prompt_tokens: int, params: SamplingParams) -> int:
        """How many tokens a sequence may generate: `max_tokens`, capped by what is left of the model length."""
        room = self.adapter.max_model_len - prompt_tokens
        if room <= 0:
            raise LimitExceeded(
                f"the prompt has {prompt_tokens} tokens; the model's length is {self.adapter.max_model_len}"
            )
        return room if params.max_tokens is None else min(params.max_tokens, room)

    def move_to(self, device: torch.device, dtype: torch.dtype) -> None:
        """Move the model to `device` (floating-point weights cast to `dtype`) between two batches. A move that
        fails halfway is undone and its error raised; ModelUnavailable when even the undoing fails."""
        with self._turnstile, self._device_lock:
            adapter = self.adapter
            previous, before = adapter.device, Placement.of(adapter.model)
            try:
                move_model(adapter.model, device, dtype)
            except Exception as exc:
                try:
                    before.restore()
                except Exception as undo:
                    raise ModelUnavailable(
                        f"moving the model to {device} failed ({exc}) and so did moving it back ({undo})"
                    ) from undo
                raise
            finally:
                if previous.type == "cuda" or device.type == "cuda":
                    torch.cuda.empty_cache()
            adapter.device, adapter.dtype = device, dtype

    def generate(
        self,
        batch: list[PreparedSequence],
        params: SamplingParams,
        *,
        on_token: TokenCallback,
        cancelled: CancelCheck,
        generator: torch.Generator | None = None,
    ) -> list[SequenceOutput]:
        """Run one batch to its end; the model stays on its device meanwhile (see `move_to`)."""
        with self._turnstile:  # a move waiting for the batch before this one goes first
            pass
        with self._device_lock:
            return self._generate(batch, params, on_token=on_token, cancelled=cancelled, generator=generator)

    @torch.inference_mode()
    def _generate(
        self,
        batch: list[PreparedSequence],
        params: SamplingParams,
        *,
        on_token: TokenCallback,
        cancelled: CancelCheck,
        generator: torch.Generator | None,
    ) -> list[SequenceOutput]:
        adapter = self.adapter
        device = adapter.device
        lengths = [len(seq.input_ids) for seq in batch]
        budgets = [self.row_budget(n, params) for n in lengths]
        width = max(lengths)
        input_ids = torch.tensor(
            [[adapter.pad_token_id] * (width - len(s.input_ids)) + s.input_ids for s in batch], device=device
        )
        attention_mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths], device=device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)

        out = adapter.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **adapter.vision_inputs(batch),
        )
        rows = len(batch)
        generated: list[list[int]] = [[] for _ in range(rows)]
        reasons: list[FinishReason | None] = [None] * rows
        history = torch.empty((rows, 0), dtype=torch.long, device=device)
        positions = position_ids[:, -1:]
        for _step in range(max(budgets)):
            if cancelled():
                raise JobCancelled("the job was cancelled")
            scores = self.guard(history[:, -self.window_size :], out.logits[:, -1, :].float())
            next_tokens = sample_next(scores, params, generator)
            for row, token in enumerate(next_tokens.tolist()):
                if reasons[row] is not None:
                    continue
                if token == adapter.eos_token_id:
                    reasons[row] = "stop"
                    continue
                generated[row].append(token)
                if on_token(row, token):
                    reasons[row] = "stop"
                elif len(generated[row]) >= budgets[row]:
                    reasons[row] = "length"
            if all(reason is not None for reason in reasons):
                break
            done = torch.tensor([reason is not None for reason in reasons], device=device)
            next_tokens = next_tokens.masked_fill(done, adapter.pad_token_id)
            history = torch.cat([history, next_tokens[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, (~done).long()[:, None]], dim=1)
            positions = positions + 1
            out = adapter.model(
                input_ids=next_tokens[:, None],
                attention_mask=attention_mask,
                position_ids=positions,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        return [
            SequenceOutput(token_ids=ids, finish_reason=reason or "length", prompt_tokens=n)
            for ids, reason, n in zip(generated, reasons, lengths, strict=True)
        ]

"""The model a worker hosts: it runs jobs, says which device it is on, and moves to another one on request."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from ocr_engine.device import resolve_dtype
from ocr_engine.engine import OcrEngine
from ocr_engine.errors import ModelUnavailable
from ocr_engine.kv_budget import kv_cache_budget
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult, PageResult
from ocr_engine.scheduler import SchedulerLimits, SchedulerStats
from ocr_engine.slot_cache import SlotCache
from workers.devices import available_devices, public_name, torch_device
from workers.engine_options import EngineOptions
from workers.registry import DeviceInfo, choose_device

log = logging.getLogger(__name__)


class ModelHost:
    """A loaded model behind an `OcrFunction` (call it with a request, a listener and whether the job is
    background work); any number of threads may call it at once: their pages share the engine's batch."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        adapter = load_adapter(options.model, device=options.device, dtype=options.dtype)
        seqs = options.max_num_seqs
        self._decoder_config = adapter.decoder.config
        try:
            budget = self.kv_budget(adapter.device, adapter.dtype)
        except ValueError as exc:
            raise ModelUnavailable(str(exc)) from exc
        limits = SchedulerLimits(
            max_num_seqs=seqs,
            kv_cache_tokens=budget,
            prefill_chunk=options.max_prefill_tokens,
            interactive_reserve=min(max(1, seqs // 8), seqs - 1),  # a chat gets in while background fills the rest
        )
        self.engine = OcrEngine(
            adapter,
            limits=limits,
            prepare_workers=options.prepare_workers,
            ngram_size=options.ngram_size,
            window_size=options.ngram_window,
        )
        log.info(
            "engine: up to %d sequences at once, KV cache %s, prefill chunks of %d tokens",
            seqs,
            describe_budget(budget),
            options.max_prefill_tokens,
        )

    def kv_budget(self, device: torch.device, dtype: torch.dtype) -> int | None:
        """OCRSERVE_KV_CACHE_TOKENS, or on a GPU what OCRSERVE_GPU_MEMORY_UTILIZATION leaves once the model is
        there; worked out at start-up and again after every move to another device."""
        per_token = SlotCache.for_decoder(self._decoder_config, device, dtype).bytes_per_token()
        return kv_cache_budget(self.options.kv_cache_tokens, device, per_token, self.options.gpu_memory_utilization)

    def __call__(
        self,
        request: OcrRequest,
        listener: OcrListener,
        background: bool = False,
        finished: Mapping[int, PageResult] | None = None,
    ) -> OcrResult:
        return run_ocr(
            self.engine,
            request,
            limits=self.options.limits,
            listener=listener,
            background=background,
            finished=finished,
        )

    def stats(self) -> SchedulerStats:
        return self.engine.stats()

    @property
    def family(self) -> str:
        return self.engine.adapter.family

    @property
    def dtype(self) -> str:
        return str(self.engine.adapter.dtype).removeprefix("torch.")

    @property
    def device_name(self) -> str:
        """`cpu` or `gpu:N`: where the model is now."""
        return public_name(self.engine.adapter.device)

    def available_devices(self) -> list[DeviceInfo]:
        """Every device of this machine, the model's own among them (described once per call)."""
        return available_devices(self.engine.adapter.device)

    def switch(self, requested: str) -> tuple[str, str]:
        """Move the model to `requested` (`cpu`, `gpu:N`, `auto`) once the batch in flight is done; returns the
        (previous, current) device names. The dtype follows OCRSERVE_DTYPE (`auto`: bf16 on GPU, fp32 on CPU).
        A failed move (out of memory, say) leaves the model where it was and raises; ModelUnavailable when the
        model could not be put back either."""
        previous = self.engine.adapter.device
        target = torch_device(choose_device(requested, self.available_devices()))
        dtype = resolve_dtype(self.options.dtype, target)
        log.info("moving the model from %s to %s (%s)", public_name(previous), public_name(target), dtype)
        self.engine.move_to(target, dtype, kv_budget=self.kv_budget)  # same device: a no-op but for the budget
        log.info("KV cache on %s: %s", public_name(target), describe_budget(self.engine.stats().kv_cache_budget))
        return public_name(previous), public_name(target)


def describe_budget(budget: int | None) -> str:
    return "unbounded" if budget is None else f"{budget} positions"

"""How a worker loads and runs the model; plain data, so the API can build it without importing torch."""

from __future__ import annotations

import msgspec

from ocr_engine.documents.limits import DocumentLimits
from ocrserve.settings import Settings


class EngineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to load the model and run jobs, whoever hosts it (API thread, CLI, worker process)."""

    model: str
    limits: DocumentLimits = DocumentLimits()
    device: str = "auto"
    dtype: str = "auto"
    max_num_seqs: int = 16
    kv_cache_tokens: int = 0  # 0: from free GPU memory (gpu_memory_utilization); no limit on a CPU
    gpu_memory_utilization: float = 0.9
    max_prefill_tokens: int = 2048
    prepare_workers: int = 2
    ngram_size: int = 30
    ngram_window: int = 90

    @classmethod
    def of(cls, settings: Settings) -> EngineOptions:
        return cls(
            model=settings.model,
            limits=settings.document_limits,
            device=settings.device,
            dtype=settings.dtype,
            max_num_seqs=settings.max_num_seqs,
            kv_cache_tokens=settings.kv_cache_tokens,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_prefill_tokens=settings.max_prefill_tokens,
            prepare_workers=settings.prepare_workers,
            ngram_size=settings.ngram_size,
            ngram_window=settings.ngram_window,
        )

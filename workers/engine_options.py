"""How a worker loads and runs the model; plain data, so the API can build it without importing torch."""

from __future__ import annotations

import msgspec

from ocr_engine.documents import DocumentLimits


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

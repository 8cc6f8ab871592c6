"""How many KV cache positions the running batch may hold when the operator names no number."""

from __future__ import annotations

import torch


def kv_cache_budget(requested: int, device: torch.device, bytes_per_token: int, utilization: float) -> int | None:
    """`requested` if set; on a GPU what is left of `utilization` × its memory once the model is loaded (as vLLM's
    gpu_memory_utilization: the rest is headroom for activations and other processes); None (no limit beyond
    the number of sequences) on a CPU."""
    if requested > 0:
        return requested
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    spare = free - (1.0 - utilization) * total
    if spare < bytes_per_token:
        raise ValueError(
            f"no GPU memory is left for the KV cache: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB "
            f"with OCRSERVE_GPU_MEMORY_UTILIZATION={utilization:g}; raise it or set OCRSERVE_KV_CACHE_TOKENS"
        )
    return int(spare // bytes_per_token)

"""Pick the torch device and dtype: CUDA with bf16 when available, else CPU with fp32."""

from __future__ import annotations

import torch

from ocr_engine.errors import ModelUnavailable

_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` prefers CUDA; an explicit name (`cpu`, `cuda`, `cuda:1`) is taken as is once validated."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelUnavailable(f"unknown device {name!r}; set OCRSERVE_DEVICE to auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("OCRSERVE_DEVICE asks for CUDA but no CUDA device is available")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bf16 on CUDA and fp32 elsewhere (CPU bf16 matmuls are slow on most machines)."""
    if name not in _DTYPES:
        raise ModelUnavailable(f"unknown dtype {name!r}; set OCRSERVE_DTYPE to one of {', '.join(_DTYPES)}")
    return _DTYPES[name] or (torch.bfloat16 if device.type == "cuda" else torch.float32)

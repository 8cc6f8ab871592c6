"""Find a checkpoint (local directory or hub id), recognise its family, and load it on a device."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ocr_engine.device import resolve_device, resolve_dtype
from ocr_engine.errors import ModelUnavailable
from ocr_engine.model_info import MODEL_HINT, first_line, read_model_config
from ocr_engine.models.base import ModelAdapter
from ocr_engine.modes import OCR1, OCR2, family_of


def load_adapter(source: str, *, device: str = "auto", dtype: str = "auto") -> ModelAdapter:
    """Load the checkpoint behind `source` with the adapter of its family."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = read_model_config(source)
    model_type = config.get("model_type", "")
    family = family_of(model_type)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    loader: Callable[[str, torch.device, torch.dtype], ModelAdapter]
    if family == OCR2:
        from ocr_engine.models.deepseek_ocr2 import DeepseekOcr2Adapter

        loader = DeepseekOcr2Adapter.load
    elif family == OCR1:
        from ocr_engine.models.deepseek_ocr import DeepseekOcrAdapter

        loader = DeepseekOcrAdapter.load
    else:
        raise ModelUnavailable(f"{source!r} has model_type {model_type!r}, not a DeepSeek-OCR model; {MODEL_HINT}")
    try:
        return loader(source, torch_device, torch_dtype)
    except ModelUnavailable:
        raise
    except Exception as exc:
        raise ModelUnavailable(f"cannot load model {source!r}: {first_line(exc)}; {MODEL_HINT}") from exc

"""The model a worker hosts: it runs jobs, says which device it is on, and moves to another one on request."""

from __future__ import annotations

import logging

from ocr_engine.device import resolve_dtype
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult
from workers.devices import available_devices, public_name, torch_device
from workers.engine_options import EngineOptions
from workers.registry import DeviceInfo, choose_device

log = logging.getLogger(__name__)


class ModelHost:
    """A loaded model behind an `OcrFunction` (call it with a request and a listener)."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.engine = OcrEngine(
            load_adapter(options.model, device=options.device, dtype=options.dtype),
            batch_size=options.batch_size,
            prepare_workers=options.prepare_workers,
            ngram_size=options.ngram_size,
            window_size=options.ngram_window,
        )

    def __call__(self, request: OcrRequest, listener: OcrListener) -> OcrResult:
        return run_ocr(self.engine, request, limits=self.options.limits, listener=listener)

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
        self.engine.move_to(target, dtype)  # on the same device: a no-op once the batch in flight is done
        return public_name(previous), public_name(target)

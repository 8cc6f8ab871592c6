"""Build the OCR function a worker runs: load the model once, then run jobs through the pipeline."""

from __future__ import annotations

from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult
from workers.engine_options import EngineOptions
from workers.runner import OcrFunction


def build_ocr(options: EngineOptions) -> OcrFunction:
    engine = OcrEngine(
        load_adapter(options.model, device=options.device, dtype=options.dtype),
        batch_size=options.batch_size,
        prepare_workers=options.prepare_workers,
        ngram_size=options.ngram_size,
        window_size=options.ngram_window,
    )

    def ocr(request: OcrRequest, listener: OcrListener) -> OcrResult:
        return run_ocr(engine, request, limits=options.limits, listener=listener)

    return ocr

"""Build the OCR function a worker runs: load the model once, then run jobs through the pipeline."""

from __future__ import annotations

from ocr_engine.documents import DocumentLimits
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest
from ocr_engine.results import OcrResult
from workers.runner import OcrFunction


def build_ocr(
    model: str,
    *,
    limits: DocumentLimits,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 4,
    ngram_size: int = 30,
    ngram_window: int = 90,
) -> OcrFunction:
    engine = OcrEngine(
        load_adapter(model, device=device, dtype=dtype),
        batch_size=batch_size,
        ngram_size=ngram_size,
        window_size=ngram_window,
    )

    def ocr(request: OcrRequest, listener: OcrListener) -> OcrResult:
        return run_ocr(engine, request, limits=limits, listener=listener)

    return ocr

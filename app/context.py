"""Everything a request handler needs, built once at start-up and kept in `app.state.context`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.metrics import Metrics
from app.settings import Settings
from ocr_engine.model_info import ModelInfo
from workers.admission_store import AdmissionStore
from workers.dispatch import Dispatcher


@dataclass(eq=False)
class AppContext:
    settings: Settings
    dispatcher: Dispatcher
    admission: AdmissionStore
    model: ModelInfo
    metrics: Metrics
    http: httpx.AsyncClient
    started_at: int

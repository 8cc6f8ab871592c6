"""Everything a request handler needs, built once at start-up and kept in `app.state.context`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import httpx

from app.metrics import Metrics
from ocr_engine.model_info import ModelInfo
from ocr_engine.token_texts import TokenTexts
from ocrserve.settings import Settings
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

    @cached_property
    def token_texts(self) -> TokenTexts:
        """The served tokenizer's tokens as log probabilities report them."""
        return TokenTexts(self.model.tokenizer)

"""Everything a request handler needs, built once at start-up and kept in `app.state.context`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import httpx

from app.admission.store import AdmissionStore
from app.fetching import UrlPolicy
from app.metrics import Metrics
from ocr_engine.model_info import ModelInfo
from ocr_engine.token_texts import TokenTexts
from ocrserve.settings import Settings
from workers.dispatch import Dispatcher
from workers.redis_client import RedisConnection


@dataclass(eq=False)
class AppContext:
    settings: Settings
    dispatcher: Dispatcher
    admission: AdmissionStore
    model: ModelInfo
    metrics: Metrics
    http: httpx.AsyncClient
    started_at: int
    redis: RedisConnection | None = None  # Celery mode: the client the dispatcher and admission share

    @cached_property
    def url_policy(self) -> UrlPolicy:
        return UrlPolicy.of(self.settings)

    @cached_property
    def token_texts(self) -> TokenTexts:
        """The served tokenizer's tokens as log probabilities report them."""
        return TokenTexts(self.model.tokenizer)

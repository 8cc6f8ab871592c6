"""/v1/models: vLLM's model card, permission list included."""

from __future__ import annotations

import uuid

import msgspec

_PERMISSION_NAMESPACE = uuid.UUID("0b7c9c1e-5d0f-4a57-9a43-6f0c3c1f8e21")


class ModelPermission(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model_permission"
    created: int
    allow_create_engine: bool = False
    allow_sampling: bool = True
    allow_logprobs: bool = True
    allow_search_indices: bool = False
    allow_view: bool = True
    allow_fine_tuning: bool = False
    organization: str = "*"
    group: str | None = None
    is_blocking: bool = False

    @classmethod
    def of(cls, model_id: str, created: int) -> ModelPermission:
        """vLLM makes a random id per listing; ours derives from the model id, so listings agree with each other."""
        return cls(id=f"modelperm-{uuid.uuid5(_PERMISSION_NAMESPACE, model_id).hex}", created=created)


class ModelCard(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "ocrserve"
    root: str
    parent: str | None = None
    max_model_len: int
    permission: list[ModelPermission] = msgspec.field(default_factory=list)


class ModelList(msgspec.Struct, kw_only=True):
    data: list[ModelCard]
    object: str = "list"

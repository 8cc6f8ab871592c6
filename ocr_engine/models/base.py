"""The interface between the generation loop and one model family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from PIL import Image

if TYPE_CHECKING:  # transformers is imported by the families' modules, when a model is loaded
    from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextModel


@dataclass(slots=True)
class PreparedSequence:
    """One sequence ready for prefill: token ids (image placeholders expanded) and its vision inputs, if any.

    Vision tensors stay uint8 on the CPU until the batch runs, so pages can be prepared ahead cheaply.
    `prepare` must be safe to call from several threads at once.
    """

    input_ids: list[int]
    vision: dict[str, Any] = field(default_factory=dict)


class ModelAdapter(Protocol):
    """What the engine needs from a loaded model family."""

    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    eos_token_id: int
    pad_token_id: int
    max_model_len: int
    family: str  # ocr_engine.modes.OCR1 or OCR2: which resolution modes apply

    def prepare(self, prompt: str, image: Image.Image | None, mode: str) -> PreparedSequence:
        """Tokenize `prompt` (one `<image>` placeholder when `image` is given) and preprocess the image in `mode`."""
        ...

    @property
    def model(self) -> torch.nn.Module:
        """The whole model (read-only here, so that each family may keep its own class of it)."""
        ...

    @property
    def decoder(self) -> DeepseekOcr2TextModel:
        """The DeepSeek-V2 text model: called with input embeddings, a 4-D mask, positions and a cache."""
        ...

    @property
    def lm_head(self) -> torch.nn.Module: ...

    def embed(self, sequence: PreparedSequence) -> torch.Tensor:
        """The sequence's input embeddings (L×hidden), its page's image features encoded into their places."""
        ...

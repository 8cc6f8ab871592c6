"""Runs the DeepSeek-V2 text decoder of either family over the slot cache.

Two kinds of forward: a prefill chunk of one row (its input embeddings, image features included), and a decode
step of every running row (one token each, at its own position). Masks are built here as 4-D booleans, so
transformers uses them as they are: row r attends to positions [0, its own length] of its slot and nothing else.
"""

from __future__ import annotations

import inspect

import torch
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextModel

from ocr_engine.models.base import ModelAdapter
from ocr_engine.slot_cache import SlotCache

# transformers renamed the decoder's cache argument (past_key_values → cache); take whichever this version has.
_CACHE_ARGUMENT = (
    "cache" if "cache" in inspect.signature(DeepseekOcr2TextModel.forward).parameters else "past_key_values"
)


def experts_implementation(phase: str, device_type: str, configured: str | None) -> str | None:
    """The MoE experts kernel for a phase: on an accelerator `grouped_mm` suits a prefill's many tokens and
    `batched_mm` a decode step's few (`generate()` switches them the same way); on the CPU, whatever the model
    was loaded with."""
    if device_type == "cpu":
        return configured
    return "grouped_mm" if phase == "prefill" else "batched_mm"


class SlotDecoder:
    def __init__(self, adapter: ModelAdapter) -> None:
        self.adapter = adapter
        self.cache = SlotCache.for_decoder(adapter.decoder.config, adapter.device, adapter.dtype)
        configured = adapter.decoder.config._experts_implementation
        self._configured = configured.get("", None) if isinstance(configured, dict) else configured
        self._experts = self._configured

    def prefill(self, slot: int, chunk: torch.Tensor, start: int) -> torch.Tensor:
        """Write a chunk (q×hidden embeddings at positions start..start+q-1) into `slot`; the float logits of its
        last position."""
        self._use_experts("prefill")
        device = chunk.device
        end = start + chunk.shape[0]
        positions = torch.arange(start, end, device=device)
        mask = (torch.arange(end, device=device)[None, :] <= positions[:, None])[None, None]
        hidden = self._forward(chunk[None], mask, positions[None], self.cache.prefill_view(slot, start, end))
        return self.adapter.lm_head(hidden[:, -1]).float()[0]

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One step of rows 0..n-1: token i goes to position `positions[i]` of slot i; float logits (n×vocab)."""
        self._use_experts("decode")
        kv_length = int(positions.max()) + 1
        mask = (torch.arange(kv_length, device=tokens.device)[None, :] <= positions[:, None])[:, None, None, :]
        embeds = self.adapter.decoder.embed_tokens(tokens[:, None])
        writes = self.cache.decode_view(tokens.shape[0], positions, kv_length)
        hidden = self._forward(embeds, mask, positions[:, None], writes)
        return self.adapter.lm_head(hidden[:, -1]).float()

    def _forward(
        self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: object
    ) -> torch.Tensor:
        out = self.adapter.decoder(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{_CACHE_ARGUMENT: cache},
        )
        return out.last_hidden_state

    def _use_experts(self, phase: str) -> None:
        wanted = experts_implementation(phase, self.adapter.device.type, self._configured)
        if wanted != self._experts:
            # None when a model loaded without a choice is back on the CPU: transformers then picks its default.
            self.adapter.decoder.set_experts_implementation(wanted)  # type: ignore[arg-type]  # it takes None too
            self._experts = wanted

"""DeepSeek-OCR v1 as a torch module: SAM + CLIP-on-SAM + projector in front of the DeepSeek-V2 MoE decoder.

transformers has no v1 class, so the decoder is `DeepseekOcr2TextModel` (the same MHA DeepSeek-V2 MoE) and the
sizes come from the original config.json (`language_config`, `vision_config.width`, `projector_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionConfig
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import (
    DeepseekOcr2SamVisionConfig,
    DeepseekOcr2TextConfig,
)
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2SamVisionEncoder,
    DeepseekOcr2TextModel,
    DeepseekOcr2TextRotaryEmbedding,
)

from ocr_engine.models.deepseek_ocr_vision import ClipOnSam, Projector

# The original code hard-codes these; config.json only carries the widths.
SAM_DEFAULTS = {"width": 768, "layers": 12, "heads": 12, "global_attn_indexes": [2, 5, 8, 11]}
CLIP_DEFAULTS = {"width": 1024, "layers": 24, "heads": 16, "image_size": 224, "patch_size": 14}


@dataclass(frozen=True, slots=True)
class DeepseekOcrSpec:
    """The sub-configs of a v1 checkpoint, read from its config.json in the original format."""

    text: DeepseekOcr2TextConfig
    sam: DeepseekOcr2SamVisionConfig
    clip: CLIPVisionConfig
    projector_input: int
    n_embed: int

    @classmethod
    def from_original(cls, raw: dict[str, Any], attn_implementation: str = "sdpa") -> DeepseekOcrSpec:
        top = {k: v for k, v in raw.items() if not isinstance(v, dict | list)}
        lang = {**top, **raw.get("language_config", {})}
        if lang.get("use_mla") or lang.get("norm_topk_prob"):
            raise ValueError("MLA attention and normalised top-k routing are not DeepSeek-OCR v1 features")
        widths = raw.get("vision_config", {}).get("width", {})
        sam = {**SAM_DEFAULTS, **widths.get("sam_vit_b", {})}
        clip = {**CLIP_DEFAULTS, **widths.get("clip-l-14-224", {})}
        projector = raw.get("projector_config", {})
        if projector.get("projector_type", "linear") != "linear":
            raise ValueError(f"unsupported projector type {projector.get('projector_type')!r}")
        text = DeepseekOcr2TextConfig(
            vocab_size=lang["vocab_size"],
            hidden_size=lang["hidden_size"],
            intermediate_size=lang["intermediate_size"],
            moe_intermediate_size=lang["moe_intermediate_size"],
            num_hidden_layers=lang["num_hidden_layers"],
            num_attention_heads=lang["num_attention_heads"],
            num_key_value_heads=lang.get("num_key_value_heads") or lang["num_attention_heads"],
            n_routed_experts=lang["n_routed_experts"],
            n_shared_experts=lang["n_shared_experts"],
            num_experts_per_tok=lang["num_experts_per_tok"],
            mlp_layer_types=mlp_layer_types(lang),
            topk_method=lang.get("topk_method", "greedy"),
            n_group=lang.get("n_group", 1),
            topk_group=lang.get("topk_group", 1),
            routed_scaling_factor=lang.get("routed_scaling_factor", 1.0),
            hidden_act=lang.get("hidden_act", "silu"),
            rms_norm_eps=lang.get("rms_norm_eps", 1e-6),
            max_position_embeddings=lang.get("max_position_embeddings", 8192),
            rope_parameters={"rope_type": "default", "rope_theta": lang.get("rope_theta", 10000.0)},
            bos_token_id=lang.get("bos_token_id", 0),
            eos_token_id=lang.get("eos_token_id", 1),
        )
        downsample_channels = list(sam.get("downsample_channels", [512, 1024]))
        sam_config = DeepseekOcr2SamVisionConfig(
            hidden_size=sam["width"],
            num_hidden_layers=sam["layers"],
            num_attention_heads=sam["heads"],
            global_attn_indexes=list(sam["global_attn_indexes"]),
            downsample_channels=downsample_channels,
            output_channels=256,
        )
        clip_config = CLIPVisionConfig(
            hidden_size=clip["width"],
            intermediate_size=4 * clip["width"],
            num_hidden_layers=clip["layers"],
            num_attention_heads=clip["heads"],
            image_size=clip["image_size"],
            patch_size=clip["patch_size"],
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        for config in (text, sam_config):
            config._attn_implementation = attn_implementation
        return cls(
            text=text,
            sam=sam_config,
            clip=clip_config,
            projector_input=projector.get("input_dim", clip["width"] + downsample_channels[1]),
            n_embed=projector.get("n_embed", text.hidden_size),
        )


def mlp_layer_types(lang: dict[str, Any]) -> list[str]:
    """Which decoder layers are MoE, by the original rule (first_k_dense_replace, moe_layer_freq)."""
    first_dense, every = lang.get("first_k_dense_replace", 0), lang.get("moe_layer_freq", 1)
    return [
        "sparse" if lang.get("n_routed_experts") and i >= first_dense and i % every == 0 else "dense"
        for i in range(lang["num_hidden_layers"])
    ]


class DeepseekOcrModel(DeepseekOcr2TextModel):
    """The decoder plus the vision tower, named as the original `DeepseekOCRModel` so weights load by name."""

    def __init__(self, spec: DeepseekOcrSpec) -> None:
        super().__init__(spec.text)
        self.sam_model = DeepseekOcr2SamVisionEncoder(spec.sam)
        self.vision_model = ClipOnSam(spec.clip)
        self.projector = Projector(spec.projector_input, spec.n_embed)
        std = 1 / math.sqrt(spec.n_embed)
        self.image_newline = nn.Parameter(torch.randn(spec.n_embed) * std)
        self.view_seperator = nn.Parameter(torch.randn(spec.n_embed) * std)  # sic, the checkpoint's spelling
        self.image_token_id: int | None = None

    def encode_views(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised views (B×3×S×S) → projected features on their grid (B×h×w×n_embed)."""
        sam = self.sam_model(pixels).last_hidden_state
        clip = self.vision_model(sam)
        features = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)
        batch, _, height, width = sam.shape
        return self.projector(features).view(batch, height, width, -1)

    def with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """A feature grid (h×w×C) as tokens, each row closed by `image_newline`."""
        newline = self.image_newline.to(grid.dtype).expand(grid.shape[0], 1, -1)
        return torch.cat([grid, newline], dim=1).flatten(0, 1)

    def page_features(
        self, global_view: torch.Tensor, tiles: torch.Tensor | None, grid: tuple[int, int]
    ) -> torch.Tensor:
        """The image tokens of one page, as the original lays them out: the tile canvas (all tiles as one grid,
        row by row), then the global view, then `view_seperator`."""
        parts = []
        if tiles is not None:
            cols, rows = grid
            local = self.encode_views(tiles)
            _, height, width, channels = local.shape
            canvas = local.view(rows, cols, height, width, channels).permute(0, 2, 1, 3, 4)
            parts.append(self.with_newlines(canvas.reshape(rows * height, cols * width, channels)))
        parts.append(self.with_newlines(self.encode_views(global_view[None])[0]))
        parts.append(self.view_seperator.to(global_view.dtype)[None])
        return torch.cat(parts, dim=0)

    def embed(self, input_ids: torch.Tensor, image_embeds: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Token embeddings with the pages' image features in the image placeholders' places."""
        embeds = self.embed_tokens(input_ids)
        if image_embeds:
            assert self.image_token_id is not None, "the adapter sets it before any page is embedded"
            mask = (input_ids == self.image_token_id)[..., None]
            embeds = embeds.masked_scatter(mask, torch.cat(image_embeds).to(embeds.dtype))
        return embeds

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        image_embeds: list[torch.Tensor] | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        if inputs_embeds is None:
            assert input_ids is not None, "called with input_ids or inputs_embeds"
            inputs_embeds = self.embed(input_ids, image_embeds)
        return super().forward(inputs_embeds=inputs_embeds, **kwargs)


class DeepseekOcrForCausalLM(nn.Module):
    """`model` + `lm_head`, called by the engine with input ids, masks, a cache and (at prefill) `image_embeds`."""

    def __init__(self, spec: DeepseekOcrSpec) -> None:
        super().__init__()
        self.spec = spec
        self.model = DeepseekOcrModel(spec)
        self.lm_head = nn.Linear(spec.text.hidden_size, spec.text.vocab_size, bias=False)

    def reset_rotary(self, device: torch.device) -> None:
        """Rebuild the RoPE tables, which are not in the checkpoint (needed after building on the meta device)."""
        self.model.rotary_emb = DeepseekOcr2TextRotaryEmbedding(self.spec.text).to(device)

    def forward(self, input_ids: torch.Tensor, logits_to_keep: int = 0, **kwargs: Any) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, **kwargs)
        hidden = out.last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
        return CausalLMOutputWithPast(
            logits=logits,
            past_key_values=out.past_key_values,  # type: ignore[call-arg]  # the name before `cache`; still accepted
        )

"""The vision side of DeepSeek-OCR v1: a CLIP-L that reads SAM features instead of pixels, and the projector.

SAM ViT-B is transformers' own `DeepseekOcr2SamVisionEncoder` (same maths as the original; only its key names
differ, see `deepseek_ocr_weights`). The CLIP variant and the projector are ours because the original fuses q/k/v
into one `qkv_proj` and feeds SAM's 16x-downsampled map in place of CLIP's patch embedding; their module names
follow the original checkpoint so that they load without renaming.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPMLP


class ClipEmbeddings(nn.Module):
    """CLS token + SAM features + learned positions (bicubic-resized when the grid is not the 16x16 of 224 px)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        width = config.hidden_size
        # Square sides: DeepseekOcrSpec gives ints (the config's annotation also allows pairs and None).
        image_size, patch_size = cast(int, config.image_size), cast(int, config.patch_size)
        positions = (image_size // patch_size) ** 2 + 1
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        # Unused on this path (SAM replaces it) but part of the published weights.
        self.patch_embedding = nn.Conv2d(3, width, patch_size, patch_size, bias=False)
        self.position_embedding = nn.Embedding(positions, width)
        self.register_buffer("position_ids", torch.arange(positions)[None], persistent=True)

    def positions(self, tokens: int) -> torch.Tensor:
        """Position table for `tokens` patch tokens (a square grid) plus the CLS position, shape 1×(1+tokens)×W."""
        table = self.position_embedding(self.position_ids)
        source, target = math.isqrt(table.shape[1] - 1), math.isqrt(tokens)
        if source == target:
            return table
        grid = table[0, 1:].reshape(1, source, source, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(target, target), mode="bicubic", antialias=True, align_corners=False)
        grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(1, target * target, -1)
        return torch.cat([table[:, :1], grid], dim=1)

    def forward(self, sam_features: torch.Tensor) -> torch.Tensor:
        patches = sam_features.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.positions(patches.shape[1])


class ClipAttention(nn.Module):
    """Bidirectional multi-head attention with the original's fused projection (q, k, v in that order)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        qkv = self.qkv_proj(hidden).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class ClipLayer(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = ClipAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.self_attn(self.layer_norm1(hidden))
        return hidden + self.mlp(self.layer_norm2(hidden))


class ClipTransformer(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ClipLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


class ClipOnSam(nn.Module):
    """CLIP-L over SAM's feature map: returns 1+h*w tokens (CLS first), no final norm (as the original)."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.embeddings = ClipEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # sic, the original name
        self.transformer = ClipTransformer(config)

    def forward(self, sam_features: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.pre_layrnorm(self.embeddings(sam_features)))


class Projector(nn.Module):
    """The original `MlpProjector` of type "linear": one Linear from [CLIP; SAM] channels to the decoder width."""

    def __init__(self, input_dim: int, n_embed: int) -> None:
        super().__init__()
        self.layers = nn.Linear(input_dim, n_embed)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)

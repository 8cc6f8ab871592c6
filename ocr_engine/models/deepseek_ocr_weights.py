"""Between the original DeepSeek-OCR v1 key names and our modules, both ways.

Only two things differ: SAM is transformers' encoder (other submodule names), and the routed experts are stored
per expert in the checkpoint but as fused 3-D tensors in transformers' MoE. Everything else loads by name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

SAM = "model.sam_model."
# (original, ours) prefixes of a SAM key after `model.sam_model.`, most specific first; `{n}` is a block number.
# One table, read in both directions.
SAM_NAMES = (
    ("blocks.{n}.norm1.", "layers.{n}.layer_norm1."),
    ("blocks.{n}.norm2.", "layers.{n}.layer_norm2."),
    ("blocks.", "layers."),
    ("patch_embed.proj.", "patch_embed.projection."),
    ("neck.0.", "neck.conv1."),
    ("neck.1.", "neck.layer_norm1."),
    ("neck.2.", "neck.conv2."),
    ("neck.3.", "neck.layer_norm2."),
    ("net_2.", "proj.conv1."),
    ("net_3.", "proj.conv2."),
)


def _rules(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """(regex, replacement) rules that rewrite the first prefix of each pair into the second."""
    return tuple(
        ("^" + re.escape(source).replace(r"\{n\}", r"(\d+)"), target.replace("{n}", r"\1")) for source, target in pairs
    )


SAM_RENAMES = _rules(SAM_NAMES)
SAM_ORIGINAL_NAMES = _rules(tuple((ours, original) for original, ours in SAM_NAMES))
EXPERT = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight$")


def _rename_sam(key: str, rules: tuple[tuple[str, str], ...]) -> str:
    if not key.startswith(SAM):
        return key
    rest = key[len(SAM) :]
    for pattern, replacement in rules:
        renamed, hits = re.subn(pattern, replacement, rest)
        if hits:
            return SAM + renamed
    return key


def from_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original checkpoint tensors → our state dict (SAM renamed, experts fused into gate_up_proj/down_proj)."""
    ours: dict[str, torch.Tensor] = {}
    experts: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for key, tensor in state.items():
        match = EXPERT.match(key)
        if match:
            prefix, index, kind = match.groups()
            experts.setdefault(prefix, {}).setdefault(kind, {})[int(index)] = tensor
        else:
            ours[_rename_sam(key, SAM_RENAMES)] = tensor
    for prefix, kinds in experts.items():
        count = len(kinds["down"])
        if any(sorted(kinds[k]) != list(range(count)) for k in ("gate", "up", "down")):
            raise ValueError(f"{prefix}: incomplete expert weights")
        gate_up = [torch.cat([kinds["gate"][i], kinds["up"][i]], dim=0) for i in range(count)]
        ours[f"{prefix}.gate_up_proj"] = torch.stack(gate_up)
        ours[f"{prefix}.down_proj"] = torch.stack([kinds["down"][i] for i in range(count)])
    return ours


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict → the original key names and per-expert tensors (for writing checkpoints, and checks)."""
    original: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(".mlp.experts.gate_up_proj"):
            prefix = key.removesuffix(".gate_up_proj")
            for index, fused in enumerate(tensor):
                gate, up = fused.chunk(2, dim=0)
                original[f"{prefix}.{index}.gate_proj.weight"] = gate
                original[f"{prefix}.{index}.up_proj.weight"] = up
        elif key.endswith(".mlp.experts.down_proj"):
            prefix = key.removesuffix(".down_proj")
            for index, down in enumerate(tensor):
                original[f"{prefix}.{index}.down_proj.weight"] = down
        else:
            original[_rename_sam(key, SAM_ORIGINAL_NAMES)] = tensor
    return original


def read_checkpoint(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory: one model.safetensors or the shards of its index."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(directory / shard))
    return state

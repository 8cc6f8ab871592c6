"""The key/value cache of the running batch: one fixed slot per row, each with its own length.

Row r keeps its keys and values at positions [0, length_r) of slot r, so a row joins (its prefill writes only its
own slot) and leaves (its slot is handed on) without touching any other row, and a decode step writes one
position per row in place. Decoding rows hold slots 0..n-1, so the step attends over a plain view of the
storage, never a gathered copy; a row that leaves is replaced by the last one (one row's keys are copied).
Every shape is fixed between reallocations, which is what CUDA graphs of decode steps would need.

The storage is zero-filled: positions past a row's length are masked out of its attention, and zeros (unlike
uninitialised memory) can never turn a masked-out score into NaN.
"""

from __future__ import annotations

from typing import Any

import torch

CAPACITY_STEP = 256  # slot lengths are multiples of this, so a slightly longer row rarely forces a reallocation


class SlotCache:
    def __init__(self, layers: int, kv_heads: int, head_dim: int, device: torch.device, dtype: torch.dtype) -> None:
        self.layers, self.kv_heads, self.head_dim = layers, kv_heads, head_dim
        self.device, self.dtype = device, dtype
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.slots = 0
        self.capacity = 0

    @classmethod
    def for_decoder(cls, config: Any, device: torch.device, dtype: torch.dtype) -> SlotCache:
        """An empty cache shaped for a transformers text-decoder config."""
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.num_hidden_layers, config.num_key_value_heads, head_dim, device, dtype)

    @property
    def tokens(self) -> int:
        """Positions allocated, all slots together (what the KV budget counts)."""
        return self.slots * self.capacity

    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * torch.empty((), dtype=self.dtype).element_size()

    def capacity_for(self, positions: int) -> int:
        """The slot length that reserving `positions` gives."""
        return max(self.capacity, -(-positions // CAPACITY_STEP) * CAPACITY_STEP)

    def reserve(self, slots: int, capacity: int, keep: list[int]) -> None:
        """At least `slots` slots of at least `capacity` positions; `keep[s]` positions of slot s survive."""
        if slots <= self.slots and capacity <= self.capacity:
            return
        slots = max(slots, self.slots)
        capacity = self.capacity_for(capacity)
        shape = (slots, self.kv_heads, capacity, self.head_dim)
        keys = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in range(self.layers)]
        values = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in range(self.layers)]
        for slot, length in enumerate(keep):
            for old, new in ((self.keys, keys), (self.values, values)):
                for layer in range(self.layers):
                    new[layer][slot, :, :length] = old[layer][slot, :, :length]
        self.keys, self.values, self.slots, self.capacity = keys, values, slots, capacity

    def release(self) -> None:
        """Give the memory back (no row is running)."""
        self.keys, self.values, self.slots, self.capacity = [], [], 0, 0

    def move(self, source: int, target: int, length: int) -> None:
        """Copy a row's first `length` positions from one slot to another."""
        for store in (self.keys, self.values):
            for tensor in store:
                tensor[target, :, :length] = tensor[source, :, :length]

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        """Follow the model to another device (between steps); raises, changing nothing, if it does not fit."""
        keys = [t.to(device=device, dtype=dtype) for t in self.keys]
        values = [t.to(device=device, dtype=dtype) for t in self.values]
        self.keys, self.values, self.device, self.dtype = keys, values, device, dtype

    def decode_view(self, rows: int, positions: torch.Tensor, kv_length: int) -> SlotWrites:
        """For a decode step of rows 0..rows-1, each writing one token at its own position."""
        return SlotWrites(self, slice(0, rows), positions, kv_length)

    def prefill_view(self, slot: int, start: int, kv_length: int) -> SlotWrites:
        """For a prefill chunk of one row, written at positions start..kv_length-1 of its slot."""
        return SlotWrites(self, slice(slot, slot + 1), start, kv_length)


class SlotWrites:
    """What the decoder's attention layers see as their cache for one forward: `update` writes the new keys and
    values into the slots and returns every valid position so far (plus masked tail) of those slots."""

    is_compileable = False

    def __init__(self, cache: SlotCache, rows: slice, at: torch.Tensor | int, kv_length: int) -> None:
        self.cache, self.rows, self.at, self.kv_length = cache, rows, at, kv_length
        if isinstance(at, torch.Tensor):
            self.row_index = torch.arange(rows.start, rows.stop, device=at.device)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.cache.keys[layer_idx], self.cache.values[layer_idx]
        if isinstance(self.at, torch.Tensor):  # decode: one new position per row
            keys[self.row_index, :, self.at] = key_states[:, :, 0]
            values[self.row_index, :, self.at] = value_states[:, :, 0]
        else:
            end = self.at + key_states.shape[2]
            keys[self.rows, :, self.at : end] = key_states
            values[self.rows, :, self.at : end] = value_states
        return keys[self.rows, :, : self.kv_length], values[self.rows, :, : self.kv_length]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.kv_length

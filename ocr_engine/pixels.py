"""Page views from Pillow to model pixels, shared by both model families.

A view stays what Pillow's resize produced, an H×W×3 uint8 canvas holding a grid of square tiles (a single view
is a 1×1 grid), until it is normalised into N×3×T×T floats, tiles in row-major order. Where that happens depends
on the model's device:

- On the CPU it happens while the page is prepared, on the prepare workers: one numpy pass reads the canvas in
  tile order and writes float32, and one adds the bias. numpy runs on the calling thread only, so the workers
  scale with the cores instead of contending for torch's intra-op pool, and no intermediate copy is made. The
  float32 buffers are reused (`BufferPool`).
- For an accelerator the uint8 canvas is shipped as it is (a quarter of float32's bytes) and rearranged and
  normalised there when its batch runs.

A prepared view is therefore either a canvas or a CPU tensor; `to_pixels` turns either into the model's input on
the device the model is on when the batch runs (a device switch may have happened in between).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-channel `(x / 255 - mean) / std`, computed as `x * scale + bias`."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias), float32, shaped 3×1×1 to broadcast over C×T×T."""
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        scale, bias = 1.0 / (255.0 * std), -mean / std
        return scale.astype(np.float32).reshape(3, 1, 1), bias.astype(np.float32).reshape(3, 1, 1)


@dataclass(frozen=True, slots=True)
class Canvas:
    """A uint8 H×W×3 view as Pillow made it, holding `grid` = (columns, rows) square tiles."""

    array: np.ndarray
    grid: tuple[int, int] = (1, 1)

    @classmethod
    def of(cls, image: Image.Image, grid: tuple[int, int] = (1, 1)) -> Canvas:
        return cls(np.asarray(image, dtype=np.uint8), grid)

    @property
    def count(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tile_side(self) -> int:
        return self.array.shape[0] // self.grid[1]

    def tile_shape(self) -> tuple[int, int, int, int, int]:
        cols, rows = self.grid
        return rows, cols, 3, self.tile_side, self.tile_side


class BufferPool:
    """float32 buffers for views normalised on the CPU, reused once no tensor refers to them.

    A fresh 42 MB array (six tiles) costs about 10,000 page faults and the kernel's zeroing on first touch, and
    prepare workers faulting at once contend for the process's memory map: reuse makes the pipeline's
    preparation about 25% faster. A buffer comes back when the tensor handed out and all its views are gone (a
    finalizer on the numpy array under the tensor's storage); at most `max_free_bytes` of them wait here
    unused, the rest are freed.
    """

    def __init__(self, max_free_bytes: int = 512 << 20) -> None:
        self.max_free_bytes = max_free_bytes
        self.free_bytes = 0
        self._free: defaultdict[int, list[np.ndarray]] = defaultdict(list)
        self._lock = threading.RLock()  # re-entrant: a finalizer may run inside, on a garbage collection

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        """An uninitialised float32 CPU tensor of `shape`. Its buffer is reused once this tensor and every view of
        it are gone, so only views of the tensor may outlive the caller, never of a numpy array taken apart."""
        size = math.prod(shape)
        with self._lock:
            spare = self._free[size]
            base = spare.pop() if spare else None
            if base is not None:
                self.free_bytes -= base.nbytes
        if base is None:
            base = np.empty(size, np.float32)
        array = base.reshape(shape)
        weakref.finalize(array, self._give_back, base)  # torch's tensor holds `array` until its storage is freed
        return torch.from_numpy(array)

    def _give_back(self, base: np.ndarray) -> None:
        with self._lock:
            if self.free_bytes + base.nbytes <= self.max_free_bytes:
                self._free[base.size].append(base)
                self.free_bytes += base.nbytes


BUFFERS = BufferPool()

View = Canvas | torch.Tensor  # a prepared view: a canvas, or pixels already normalised on the CPU


def prepared(
    canvas: Canvas | None, normalisation: Normalisation, device: torch.device, dtype: torch.dtype
) -> View | None:
    """What `prepare` keeps of a view: normalised right away when the model is on the CPU, else the canvas."""
    if canvas is None:
        return None
    if device.type != "cpu":  # a writable copy, made here on a prepare worker, is what torch can ship
        return Canvas(np.array(canvas.array), canvas.grid)
    return normalise_numpy(canvas, normalisation, BUFFERS.take(canvas.tile_shape())).to(dtype)


def to_pixels(
    view: View | None, normalisation: Normalisation, device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """A prepared view as the model's N×3×T×T input on `device`, whichever form it was prepared in."""
    if view is None or isinstance(view, torch.Tensor):
        return None if view is None else view.to(device, dtype)
    if device.type == "cpu":
        return normalise_numpy(view, normalisation).to(dtype)
    return normalise_torch(view, normalisation, device).to(dtype)


def normalise_numpy(canvas: Canvas, normalisation: Normalisation, out: torch.Tensor | None = None) -> torch.Tensor:
    """The CPU path: the multiply reads the canvas in tile order (a strided view) and writes float32 once, into
    `out` (a float32 CPU tensor shaped `canvas.tile_shape()`) when given."""
    rows, cols, _, side, _ = shape = canvas.tile_shape()
    scale, bias = normalisation.coefficients()
    out = torch.empty(shape, dtype=torch.float32) if out is None else out
    target = out.numpy()
    np.multiply(canvas.array.reshape(rows, side, cols, side, 3).transpose(0, 2, 4, 1, 3), scale, out=target)
    target += bias
    return out.view(rows * cols, 3, side, side)


def normalise_torch(canvas: Canvas, normalisation: Normalisation, device: torch.device) -> torch.Tensor:
    """The accelerator path: ship uint8, then rearrange and normalise on `device`."""
    rows, cols, _, side, _ = shape = canvas.tile_shape()
    array = canvas.array if canvas.array.flags.writeable else np.array(canvas.array)  # torch warns on read-only
    pixels = torch.from_numpy(array).to(device, non_blocking=True)
    scale, bias = (torch.from_numpy(c).to(device) for c in normalisation.coefficients())
    out = torch.empty(shape, dtype=torch.float32, device=device)
    out.copy_(pixels.view(rows, side, cols, side, 3).permute(0, 2, 4, 1, 3))
    return out.mul_(scale).add_(bias).view(rows * cols, 3, side, side)

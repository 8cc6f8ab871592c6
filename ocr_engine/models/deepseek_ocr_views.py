"""Page → views and image-token count for DeepSeek-OCR v1, as the original `infer()` does it.

- Without crop (tiny/small/base/large): one view of the mode's side. Sides up to 640 are resized to a square
  (aspect ratio not kept); larger sides keep the aspect ratio and are centred on grey 127 (`ImageOps.pad`).
- With crop (gundam): the page padded to the global side, plus tiles when either side exceeds the tile side: the
  page resized onto the grid of 2..9 tiles whose aspect ratio is closest to the page's.
Views stay uint8 (CHW) until they reach the device; `to_pixels` normalises with mean = std = 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from ocr_engine.image_tokens import ocr1_grid
from ocr_engine.modes import ResolutionMode

GREY = (127, 127, 127)  # int(0.5 * 255): the normalisation mean as a colour
RESIZE_LIMIT = 640  # non-crop views up to this side are stretched to a square, not padded


@dataclass(frozen=True, slots=True)
class PageViews:
    global_view: torch.Tensor  # uint8 3×S×S
    tiles: torch.Tensor | None  # uint8 N×3×T×T, row-major over the grid
    grid: tuple[int, int]  # (columns, rows) of tiles; (1, 1) when there are none


def _chw(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def _tiles(image: Image.Image, tile: int) -> tuple[torch.Tensor, tuple[int, int]]:
    cols, rows = ocr1_grid(image.width, image.height, tile)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    canvas = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).view(rows, tile, cols, tile, 3)
    return canvas.permute(0, 2, 4, 1, 3).reshape(rows * cols, 3, tile, tile), (cols, rows)


def preprocess(image: Image.Image, mode: ResolutionMode) -> PageViews:
    """The uint8 views of one RGB page in `mode` (sizes from ocr_engine.modes.FAMILY_MODES[OCR1])."""
    image = image.convert("RGB")
    if not mode.crop:
        side = mode.tile_size
        if side <= RESIZE_LIMIT:
            image = image.resize((side, side), Image.Resampling.BICUBIC)
        return PageViews(_chw(ImageOps.pad(image, (side, side), color=GREY)), None, (1, 1))
    global_view = _chw(ImageOps.pad(image, (mode.global_size, mode.global_size), color=GREY))
    if image.width <= mode.tile_size and image.height <= mode.tile_size:
        return PageViews(global_view, None, (1, 1))
    tiles, grid = _tiles(image, mode.tile_size)
    return PageViews(global_view, tiles, grid)


def to_pixels(views: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 → float on the device, as ToTensor + Normalize(0.5, 0.5): x / 255, minus 0.5, over 0.5."""
    scaled = views.to(device, non_blocking=True).to(torch.float32).div_(255.0)
    return scaled.sub_(0.5).div_(0.5).to(dtype)

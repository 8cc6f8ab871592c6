"""How many vision tokens a page becomes, from its size alone: no torch, no pixels.

The adapters cut tiles on these grids and expand a page's `<image>` placeholder by these counts, and the API adds
them up to refuse a request over OCRSERVE_MAX_IMAGE_TOKENS before it is queued: one set of rules for both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ocr_engine.documents import DocumentLimits, document_page_sizes
from ocr_engine.modes import FAMILY_MODES, OCR1, ResolutionMode
from ocr_engine.request import Document

Grid = tuple[int, int]  # (columns, rows) of tiles


def closest_grid(width: int, height: int, tile: int, grids: Sequence[Grid]) -> Grid:
    """The grid whose aspect ratio is closest to the page's. On a tie a later grid wins only when the page has more
    than half the pixels the grid covers. Both families' processors use this rule; the order of `grids` differs."""
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


# ---------------------------------------------------------------- DeepSeek-OCR-2


@lru_cache(maxsize=8)
def ocr2_grids(min_tiles: int, max_tiles: int) -> tuple[Grid, ...]:
    """The candidate grids in transformers' order: columns then rows, stably sorted by tile count."""
    grids = [
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    ]
    return tuple(sorted(grids, key=lambda grid: grid[0] * grid[1]))


@dataclass(frozen=True, slots=True)
class ImageGeometry:
    """The preprocessing constants of a DeepSeek-OCR-2 checkpoint; the defaults are transformers' own."""

    global_size: int = 1024
    tile_size: int = 768
    min_tiles: int = 2
    max_tiles: int = 6
    crop_to_tiles: bool = True
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    background: tuple[int, ...] = (127, 127, 127)
    patch_size: int = 16
    downsample: int = 4

    @classmethod
    def from_processor(cls, processor: Any, patch_size: int, downsample: int) -> ImageGeometry:
        """From a loaded `DeepseekOcr2ImageProcessorPil` and its processor's patch size and downsample ratio."""
        return cls(
            global_size=processor.size.height,
            tile_size=processor.tile_size,
            min_tiles=processor.min_patches,
            max_tiles=processor.max_patches,
            crop_to_tiles=processor.crop_to_patches,
            mean=tuple(processor.image_mean),
            std=tuple(processor.image_std),
            background=tuple(processor.background_color),
            patch_size=patch_size,
            downsample=downsample,
        )

    @classmethod
    def from_configs(cls, processor: Mapping[str, Any], image_processor: Mapping[str, Any]) -> ImageGeometry:
        """From the JSON of `processor_config.json` and of the image processor (nested there under
        `image_processor`, or `preprocessor_config.json`), without loading transformers: what the API uses."""
        default = cls()
        size = image_processor.get("size") or {}
        return cls(
            global_size=size.get("height", default.global_size),
            tile_size=image_processor.get("tile_size", default.tile_size),
            min_tiles=image_processor.get("min_patches", default.min_tiles),
            max_tiles=image_processor.get("max_patches", default.max_tiles),
            crop_to_tiles=image_processor.get("crop_to_patches", default.crop_to_tiles),
            mean=tuple(image_processor.get("image_mean", default.mean)),
            std=tuple(image_processor.get("image_std", default.std)),
            background=tuple(image_processor.get("background_color", default.background)),
            patch_size=processor.get("patch_size", default.patch_size),
            downsample=processor.get("downsample_ratio", default.downsample),
        )

    def _side_tokens(self, pixels: int) -> int:
        return math.ceil(pixels / self.patch_size / self.downsample) ** 2

    @property
    def tokens_per_global(self) -> int:
        return self._side_tokens(self.global_size)

    @property
    def tokens_per_tile(self) -> int:
        return self._side_tokens(self.tile_size)

    def tile_grid(self, width: int, height: int) -> Grid | None:
        """The grid of local tiles of a page; None when tiling is off or the page fits in one tile."""
        if not self.crop_to_tiles or max(width, height) <= self.tile_size:
            return None
        return closest_grid(width, height, self.tile_size, ocr2_grids(self.min_tiles, self.max_tiles))

    def image_tokens(self, tiles: int) -> int:
        """The global view's tokens, each tile's, and one view separator."""
        return self.tokens_per_global + self.tokens_per_tile * tiles + 1

    def page_tokens(self, mode: ResolutionMode, width: int, height: int) -> int:
        grid = self.tile_grid(width, height) if mode.crop else None
        return self.image_tokens(0 if grid is None else grid[0] * grid[1])


# ---------------------------------------------------------------- DeepSeek-OCR (v1)

PATCH = 16  # SAM patch side
DOWNSAMPLE = 4  # SAM's two stride-2 convolutions
MIN_TILES, MAX_TILES = 2, 9

# Built in the original's insertion order: ties of equal tile count then iterate the set the same way.
_OCR1_CANDIDATES = {
    (cols, rows)
    for n in range(MIN_TILES, MAX_TILES + 1)
    for cols in range(1, n + 1)
    for rows in range(1, n + 1)
    if MIN_TILES <= cols * rows <= MAX_TILES
}
OCR1_GRIDS: tuple[Grid, ...] = tuple(sorted(_OCR1_CANDIDATES, key=lambda grid: grid[0] * grid[1]))


def grid_side(pixels: int) -> int:
    """Feature-grid side of a square v1 view (the original's `num_queries`)."""
    return math.ceil((pixels // PATCH) / DOWNSAMPLE)


def ocr1_grid(width: int, height: int, tile: int) -> Grid:
    """The (columns, rows) grid of MIN_TILES..MAX_TILES tiles the original `infer()` cuts a page into."""
    return closest_grid(width, height, tile, OCR1_GRIDS)


def ocr1_image_tokens(mode: ResolutionMode, grid: Grid, has_tiles: bool) -> int:
    """Rows of features each closed by a newline token, tiles (as one canvas) then the global view, + 1 separator."""
    global_size, tile_size = mode.sides()
    global_side = grid_side(global_size if mode.crop else tile_size)
    count = global_side * (global_side + 1) + 1
    if has_tiles:
        cols, rows = grid
        tile_side = grid_side(tile_size)
        count += (tile_side * cols + 1) * (tile_side * rows)
    return count


def ocr1_page_tokens(mode: ResolutionMode, width: int, height: int) -> int:
    _, tile_size = mode.sides()
    has_tiles = mode.crop and (width > tile_size or height > tile_size)
    grid = ocr1_grid(width, height, tile_size) if has_tiles else (1, 1)
    return ocr1_image_tokens(mode, grid, has_tiles)


# ---------------------------------------------------------------- pages and requests


def page_image_tokens(family: str, mode: str, width: int, height: int, geometry: ImageGeometry | None) -> int:
    """Vision tokens of one `width` x `height` page in `mode`; `geometry` is a DeepSeek-OCR-2 checkpoint's."""
    resolution = FAMILY_MODES[family][mode]
    if family == OCR1:
        return ocr1_page_tokens(resolution, width, height)
    if geometry is None:
        raise ValueError(f"counting {family} image tokens needs the checkpoint's ImageGeometry")
    return geometry.page_tokens(resolution, width, height)


def request_image_tokens(
    documents: Iterable[Document],
    *,
    family: str,
    mode: str,
    dpi: int,
    geometry: ImageGeometry | None,
    limits: DocumentLimits,
) -> list[int]:
    """Vision tokens of each selected page of `documents`, in order, from page sizes read without rendering."""
    return [
        page_image_tokens(family, mode, width, height, geometry)
        for document in documents
        for width, height in document_page_sizes(document, dpi, limits)
    ]

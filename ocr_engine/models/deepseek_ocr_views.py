"""Page → views and image-token count for DeepSeek-OCR v1, as the original `infer()` does it.

- Without crop (tiny/small/base/large): one view of the mode's side. Sides up to 640 are resized to a square
  (aspect ratio not kept); larger sides keep the aspect ratio and are centred on grey 127 (`ImageOps.pad`).
- With crop (gundam): the page padded to the global side, plus tiles when either side exceeds the tile side: the
  page resized onto the grid of 2..9 tiles whose aspect ratio is closest to the page's.
Views stay Pillow's uint8 canvases until `ocr_engine.pixels` normalises them with mean = std = 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from ocr_engine.image_tokens import ocr1_grid
from ocr_engine.modes import ResolutionMode
from ocr_engine.pixels import Canvas, Normalisation

GREY = (127, 127, 127)  # int(0.5 * 255): the normalisation mean as a colour
RESIZE_LIMIT = 640  # non-crop views up to this side are stretched to a square, not padded
NORMALISATION = Normalisation(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # ToTensor + Normalize(0.5, 0.5)


@dataclass(frozen=True, slots=True)
class PageViews:
    global_view: Canvas  # S×S
    tiles: Canvas | None = None  # the grid of T×T tiles

    @property
    def grid(self) -> tuple[int, int]:
        """(columns, rows) of tiles; (1, 1) when there are none."""
        return (1, 1) if self.tiles is None else self.tiles.grid


def _tiles(image: Image.Image, tile: int) -> Canvas:
    cols, rows = grid = ocr1_grid(image.width, image.height, tile)
    return Canvas.of(image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC), grid)


def preprocess(image: Image.Image, mode: ResolutionMode) -> PageViews:
    """The uint8 views of one RGB page in `mode` (sizes from ocr_engine.modes.FAMILY_MODES[OCR1])."""
    image = image.convert("RGB")
    global_size, tile_size = mode.sides()
    if not mode.crop:
        side = tile_size
        if side <= RESIZE_LIMIT:
            image = image.resize((side, side), Image.Resampling.BICUBIC)
        return PageViews(Canvas.of(ImageOps.pad(image, (side, side), color=GREY)))
    global_view = Canvas.of(ImageOps.pad(image, (global_size, global_size), color=GREY))
    if image.width <= tile_size and image.height <= tile_size:
        return PageViews(global_view)
    return PageViews(global_view, _tiles(image, tile_size))

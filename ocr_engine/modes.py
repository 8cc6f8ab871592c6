"""Model families and their resolution modes. Plain data (no torch): the API validates modes with it.

A mode says how a page becomes vision tokens: the side of the global view, the side of the local tiles, and
whether pages larger than a tile are cut into tiles. `None` sizes mean the checkpoint's own processor config.
"""

from __future__ import annotations

import msgspec

from ocr_engine.errors import InvalidInput

OCR2 = "deepseek-ocr-2"
OCR1 = "deepseek-ocr"
_FAMILY_OF_MODEL_TYPE = {
    "deepseek_ocr2": OCR2,
    "deepseek_vl_v2": OCR1,
    "DeepseekOCR": OCR1,
    "deepseek_ocr": OCR1,
}


class ResolutionMode(msgspec.Struct, frozen=True, kw_only=True):
    global_size: int | None = None
    tile_size: int | None = None
    crop: bool = False

    def sides(self) -> tuple[int, int]:
        """(global view side, tile side) of a mode that fixes them, as every DeepSeek-OCR v1 mode does."""
        assert self.global_size is not None and self.tile_size is not None, "this mode's sides are the checkpoint's"
        return self.global_size, self.tile_size


FAMILY_MODES: dict[str, dict[str, ResolutionMode]] = {
    OCR2: {
        "gundam": ResolutionMode(crop=True),  # 1024 global view + 768 tiles (the checkpoint's processor config)
        "base": ResolutionMode(crop=False),  # the 1024 global view alone
    },
    OCR1: {
        "tiny": ResolutionMode(global_size=512, tile_size=512),
        "small": ResolutionMode(global_size=640, tile_size=640),
        "base": ResolutionMode(global_size=1024, tile_size=1024),
        "large": ResolutionMode(global_size=1280, tile_size=1280),
        "gundam": ResolutionMode(global_size=1024, tile_size=640, crop=True),
    },
}
DEFAULT_MODE = {OCR2: "gundam", OCR1: "gundam"}


def family_of(model_type: str) -> str | None:
    """The family of a checkpoint's `model_type`, or None when it is not a DeepSeek-OCR model."""
    return _FAMILY_OF_MODEL_TYPE.get(model_type)


def resolve_mode(family: str, mode: str | None, *, param: str = "ocr.mode") -> str:
    """The mode to use: the one asked for (checked against the family's modes) or the family's default."""
    modes = FAMILY_MODES[family]
    if mode is None:
        return DEFAULT_MODE[family]
    if mode not in modes:
        raise InvalidInput(f"unknown mode {mode!r} for {family}; valid modes: {', '.join(modes)}", param=param)
    return mode

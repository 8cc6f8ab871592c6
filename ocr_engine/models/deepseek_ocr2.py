"""DeepSeek-OCR-2 through transformers' native classes, with our own image preprocessing.

The preprocessing reproduces `DeepseekOcr2ImageProcessorPil` (same tile grid, same bicubic resize, same grey
padding) but keeps Pillow's uint8 output until one normalisation pass (`ocr_engine.pixels`): several times
faster than the reference path, and 4x fewer bytes shipped to a GPU.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import torch
from PIL import Image
from transformers import AutoProcessor, DeepseekOcr2ForConditionalGeneration
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextModel

from ocr_engine.image_tokens import ImageGeometry
from ocr_engine.models.base import PreparedSequence
from ocr_engine.modes import FAMILY_MODES, OCR2
from ocr_engine.pixels import Canvas, Normalisation, prepared, to_pixels

IMAGE_TOKEN = "<image>"


def global_view(image: Image.Image, geometry: ImageGeometry) -> Canvas:
    """The whole page scaled to fit the global square and centred on the background colour."""
    side = geometry.global_size if geometry.crop_to_tiles else geometry.tile_size
    width, height = image.size
    scale = side / max(width, height)
    size = (round(width * scale), round(height * scale))
    resized = image.resize(size, Image.Resampling.BICUBIC) if size != image.size else image
    canvas = Image.new("RGB", (side, side), geometry.background)
    canvas.paste(resized, ((side - size[0]) // 2, (side - size[1]) // 2))
    return Canvas.of(canvas)


def local_tiles(image: Image.Image, geometry: ImageGeometry) -> Canvas | None:
    """The page resized onto the best-fitting grid of tiles; None for small pages."""
    grid = geometry.tile_grid(*image.size)
    if grid is None:
        return None
    (cols, rows), tile = grid, geometry.tile_size
    return Canvas.of(image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC), grid)


def preprocess_page(image: Image.Image, geometry: ImageGeometry, *, tiles: bool = True) -> dict[str, Canvas | None]:
    """The views of one page: the global view and the local tiles (None for small pages or `tiles=False`)."""
    return {"global": global_view(image, geometry), "tiles": local_tiles(image, geometry) if tiles else None}


def normalisation(geometry: ImageGeometry) -> Normalisation:
    return Normalisation(geometry.mean, geometry.std)


class DeepseekOcr2Adapter:
    """Loads a DeepSeek-OCR-2 checkpoint and turns (prompt, page) pairs into model inputs."""

    family = OCR2

    def __init__(
        self,
        model: DeepseekOcr2ForConditionalGeneration,
        tokenizer: Any,
        geometry: ImageGeometry,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.geometry = geometry
        self.device = device
        self.dtype = dtype
        text_config = cast(DeepseekOcr2TextConfig, model.config.text_config)  # DeepseekOcr2Config makes it one
        self.image_token_id = model.config.image_token_id
        config_eos = cast(int, text_config.eos_token_id)  # one id in DeepSeek-OCR configs (transformers allows a list)
        self.eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config_eos
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        self.max_model_len = text_config.max_position_embeddings
        self.normalisation = normalisation(geometry)
        self._tokenizer_lock = threading.Lock()
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def load(cls, source: str, device: torch.device, dtype: torch.dtype) -> DeepseekOcr2Adapter:
        processor = AutoProcessor.from_pretrained(source, backend="pil")
        model = DeepseekOcr2ForConditionalGeneration.from_pretrained(source, dtype=dtype, attn_implementation="sdpa")
        # PreTrainedModel.to is wrapped in functools.wraps, which mypy sees unbound: move it as the nn.Module it is.
        cast(torch.nn.Module, model).to(device).eval()
        geometry = ImageGeometry.from_processor(
            processor.image_processor, processor.patch_size, processor.downsample_ratio
        )
        return cls(model, processor.tokenizer, geometry, device, dtype)

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt, cached: every page of a job shares one, and pages are prepared on threads."""
        with self._tokenizer_lock:
            if prompt not in self._prompt_cache:
                if len(self._prompt_cache) > 64:
                    self._prompt_cache.clear()
                self._prompt_cache[prompt] = self.tokenizer(prompt, add_special_tokens=True).input_ids
            return self._prompt_cache[prompt]

    def prepare(self, prompt: str, image: Image.Image | None, mode: str) -> PreparedSequence:
        ids = self.prompt_ids(prompt)
        if image is None:
            return PreparedSequence(input_ids=[i for i in ids if i != self.image_token_id])
        views = preprocess_page(image, self.geometry, tiles=FAMILY_MODES[OCR2][mode].crop)
        tile_count = 0 if views["tiles"] is None else views["tiles"].count
        vision = {name: prepared(view, self.normalisation, self.device, self.dtype) for name, view in views.items()}
        at = ids.index(self.image_token_id) if self.image_token_id in ids else 1
        rest = [i for i in ids[at:] if i != self.image_token_id]
        image_ids = [self.image_token_id] * self.geometry.image_tokens(tile_count)
        return PreparedSequence(input_ids=ids[:at] + image_ids + rest, vision=vision | {"tile_count": tile_count})

    @property
    def decoder(self) -> DeepseekOcr2TextModel:
        return self.model.model.language_model

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.model.lm_head

    def embed(self, sequence: PreparedSequence) -> torch.Tensor:
        """The sequence's input embeddings (L×hidden): token embeddings with the page's encoded image features in
        the image placeholders' places. Encodes one page at a time: activation memory is one page's views."""
        ids = torch.tensor(sequence.input_ids, device=self.device)
        embeds = self.model.model.get_input_embeddings()(ids)
        vision = sequence.vision
        if vision:
            encoded = self.model.model.get_image_features(
                pixel_values=to_pixels(vision["global"], self.normalisation, self.device, self.dtype),
                pixel_values_local=to_pixels(vision["tiles"], self.normalisation, self.device, self.dtype),
                num_local_patches=[vision["tile_count"]],
            )
            embeds[ids == self.image_token_id] = torch.cat(list(encoded.pooler_output)).to(embeds.dtype)
        return embeds

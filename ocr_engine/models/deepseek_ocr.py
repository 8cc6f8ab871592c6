"""DeepSeek-OCR v1 (`deepseek-ai/DeepSeek-OCR`): loads the original checkpoint and prepares pages for the engine.

Prompts are tokenized as the original `infer()` does with its "plain" template: BOS, then the text before
`<image>`, the image tokens, the text after, each part encoded without special tokens.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image
from transformers import AutoTokenizer

from ocr_engine.image_tokens import ocr1_image_tokens
from ocr_engine.models.base import PreparedSequence
from ocr_engine.models.deepseek_ocr_model import DeepseekOcrForCausalLM, DeepseekOcrModel, DeepseekOcrSpec
from ocr_engine.models.deepseek_ocr_views import NORMALISATION, preprocess
from ocr_engine.models.deepseek_ocr_weights import from_original, read_checkpoint
from ocr_engine.modes import FAMILY_MODES, OCR1
from ocr_engine.pixels import prepared, to_pixels

IMAGE_TOKEN = "<image>"


def checkpoint_dir(source: str) -> Path:
    """A local directory as is; a hub id downloaded (config, weights, tokenizer only)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))


def load_model(directory: Path, device: torch.device, dtype: torch.dtype, attn: str = "sdpa") -> DeepseekOcrForCausalLM:
    """Build on the meta device (no random init of billions of weights), then take the checkpoint's tensors."""
    spec = DeepseekOcrSpec.from_original(json.loads((directory / "config.json").read_text()), attn)
    with torch.device("meta"):
        model = DeepseekOcrForCausalLM(spec)
    model.load_state_dict(from_original(read_checkpoint(directory)), strict=True, assign=True)
    model.reset_rotary(device)
    missing = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:
        raise ValueError(f"checkpoint leaves {len(missing)} tensors uninitialised, e.g. {missing[0]}")
    return model.to(device=device, dtype=dtype).eval()


class DeepseekOcrAdapter:
    """The engine's view of a v1 checkpoint: tokenized prompts with expanded image tokens, and image features."""

    family = OCR1

    def __init__(self, model: DeepseekOcrForCausalLM, tokenizer: Any, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        text = model.spec.text
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        model.model.image_token_id = self.image_token_id
        self.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else text.bos_token_id
        config_eos = cast(int, text.eos_token_id)  # one id in DeepSeek-OCR configs (transformers allows a list)
        self.eos_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else config_eos
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        self.max_model_len = text.max_position_embeddings
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[list[int], list[int] | None]] = {}

    @classmethod
    def load(cls, source: str, device: torch.device, dtype: torch.dtype) -> DeepseekOcrAdapter:
        directory = checkpoint_dir(source)
        # The published config.json names remote code (auto_map); we need none, and must never prompt for it.
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
        return cls(load_model(directory, device, dtype), tokenizer, device, dtype)

    def prompt_parts(self, prompt: str) -> tuple[list[int], list[int] | None]:
        """[BOS] + ids before `<image>`, and the ids after it (None without a placeholder); cached per prompt."""
        with self._lock:
            if prompt not in self._cache:
                if len(self._cache) > 64:
                    self._cache.clear()
                before, found, after = prompt.partition(IMAGE_TOKEN)
                encode = self.tokenizer.encode
                head = [self.bos_token_id, *encode(before, add_special_tokens=False)]
                tail = encode(after.replace(IMAGE_TOKEN, ""), add_special_tokens=False) if found else None
                self._cache[prompt] = (head, tail)
            return self._cache[prompt]

    def prepare(self, prompt: str, image: Image.Image | None, mode: str) -> PreparedSequence:
        head, tail = self.prompt_parts(prompt)
        if image is None:
            return PreparedSequence(input_ids=head + (tail or []))
        resolution = FAMILY_MODES[OCR1][mode]
        views = preprocess(image, resolution)
        count = ocr1_image_tokens(resolution, views.grid, views.tiles is not None)
        ids = [*head, *[self.image_token_id] * count, *(tail or [])]
        if tail is None:  # no placeholder in the prompt: the image goes right after BOS, as `<image>\n...` would
            ids = [head[0], *[self.image_token_id] * count, *head[1:]]
        vision = {
            "global": prepared(views.global_view, NORMALISATION, self.device, self.dtype),
            "tiles": prepared(views.tiles, NORMALISATION, self.device, self.dtype),
            "grid": views.grid,
        }
        return PreparedSequence(input_ids=ids, vision=vision)

    def page_features(self, vision: dict[str, Any]) -> torch.Tensor:
        global_view = to_pixels(vision["global"], NORMALISATION, self.device, self.dtype)
        assert global_view is not None, "every page has a global view"
        return self.model.model.page_features(
            global_view[0], to_pixels(vision["tiles"], NORMALISATION, self.device, self.dtype), vision["grid"]
        )

    @property
    def decoder(self) -> DeepseekOcrModel:
        return self.model.model

    @property
    def lm_head(self) -> torch.nn.Module:
        return self.model.lm_head

    def embed(self, sequence: PreparedSequence) -> torch.Tensor:
        """The sequence's input embeddings (L×hidden), the page's image tokens in the placeholders' places."""
        ids = torch.tensor(sequence.input_ids, device=self.device)
        features = [self.page_features(sequence.vision)] if sequence.vision else None
        return self.model.model.embed(ids[None], features)[0]

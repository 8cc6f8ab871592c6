"""What the API needs to know about a model without loading its weights (no torch): length and tokenizer."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ocr_engine.errors import ModelUnavailable
from ocr_engine.image_tokens import ImageGeometry
from ocr_engine.modes import OCR2, family_of

MODEL_HINT = (
    "set OCRSERVE_MODEL (--model) to a local checkpoint directory or a reachable hub id; "
    "`ocrserve write-checkpoint DIR` writes a tiny random one for smoke runs"
)


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
DNS_ATTEMPTS, DNS_RETRY_S = 3, 2.0


def _hub_unreachable(source: str) -> str | None:
    """Why the hub cannot be reached at all (its host name does not resolve, as on an offline machine), when the
    model is not in the local cache either. The hub client would retry for about 25 s and fail the same way. With a
    proxy the name is the proxy's to resolve, so nothing is probed."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return None
    host = urlparse(constants.ENDPOINT).hostname or ""
    for attempt in range(DNS_ATTEMPTS):
        try:
            socket.getaddrinfo(host, 443)
            return None
        except OSError as exc:
            # "try again": the name server is not ready yet (a pod just started), which is not a no
            again = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
            if not again or attempt == DNS_ATTEMPTS - 1:
                reason = exc.strerror or str(exc)
                return f"the hub at {host} cannot be reached ({reason}) and the model is not in the local cache"
            time.sleep(DNS_RETRY_S)
    return None


def read_model_config(source: str) -> dict[str, Any]:
    """config.json of a local directory or a hub repository (downloaded and cached by huggingface_hub)."""
    if source.startswith((".", "/", "~")) and not Path(source).expanduser().is_dir():
        raise ModelUnavailable(f"no checkpoint directory at {source!r}; {MODEL_HINT}")
    try:
        if Path(source).is_dir():
            path = Path(source) / "config.json"
        else:
            from huggingface_hub import hf_hub_download

            if reason := _hub_unreachable(source):
                raise ModelUnavailable(f"cannot find model {source!r}: {reason}; {MODEL_HINT}")
            path = Path(hf_hub_download(repo_id=source, filename="config.json"))
        return json.loads(path.read_text())
    except ModelUnavailable:
        raise
    except Exception as exc:
        raise ModelUnavailable(f"cannot find model {source!r} ({first_line(exc)}); {MODEL_HINT}") from exc


def _optional_json(source: str, filename: str) -> dict[str, Any]:
    """A JSON file of a local directory or a hub repository; {} when the checkpoint has no such file."""
    if Path(source).is_dir():
        path = Path(source) / filename
        return json.loads(path.read_text()) if path.is_file() else {}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(repo_id=source, filename=filename)).read_text())
    except EntryNotFoundError:
        return {}


def read_image_geometry(source: str) -> ImageGeometry:
    """A DeepSeek-OCR-2 checkpoint's preprocessing constants, read as JSON: transformers' image processor needs torch,
    which the API never imports. Image processor fields are nested in `processor_config.json` (transformers 5) or
    stand alone in `preprocessor_config.json`; what the files leave out keeps transformers' defaults."""
    processor = _optional_json(source, "processor_config.json")
    image_processor = processor.get("image_processor") or _optional_json(source, "preprocessor_config.json")
    return ImageGeometry.from_configs(processor, image_processor)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    source: str
    model_type: str
    family: str
    max_model_len: int
    tokenizer: Any
    max_token_chars: int  # the longest vocabulary entry: no token stands for more characters of a prompt
    geometry: ImageGeometry | None = None  # DeepSeek-OCR-2 only: v1's views are fixed by the resolution mode

    def max_prompt_chars(self) -> int:
        """The longest prompt text that could fit the model's length; anything longer is refused untokenized."""
        return self.max_model_len * self.max_token_chars


def load_model_info(source: str) -> ModelInfo:
    config = read_model_config(source)
    family = family_of(config.get("model_type", ""))
    if family is None:
        raise ModelUnavailable(f"{source!r} has model_type {config.get('model_type')!r}, not a DeepSeek-OCR model")
    text = config.get("text_config") or config.get("language_config") or config
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)  # v1 configs carry auto_map
    except Exception as exc:
        raise ModelUnavailable(f"cannot load the tokenizer of {source!r} ({first_line(exc)}); {MODEL_HINT}") from exc
    return ModelInfo(
        source=source,
        model_type=config.get("model_type", ""),
        family=family,
        max_model_len=int(text.get("max_position_embeddings", 8192)),
        tokenizer=tokenizer,
        max_token_chars=max(map(len, tokenizer.get_vocab())),
        geometry=read_image_geometry(source) if family == OCR2 else None,
    )

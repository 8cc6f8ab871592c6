"""Settings: one Struct, read once from `OCRSERVE_*` environment variables, overridable by CLI flags.

Every field `foo_bar` is `OCRSERVE_FOO_BAR` in the environment and `--foo-bar` on the command line; the help
text below is what `ocrserve serve --help` prints and what the README's settings table says. Plain values only:
each layer builds its own objects from them (the API its URL policy, a worker its engine options).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ocr_engine.documents.limits import DocumentLimits

ENV_PREFIX = "OCRSERVE_"
# Settings that were removed, and what took their place: naming one is an error, not silently ignored.
REMOVED = {
    "batch_size": (
        "OCRSERVE_BATCH_SIZE is gone: pages of every job now decode together in one running batch of up to "
        "OCRSERVE_MAX_NUM_SEQS sequences (continuous batching); set that instead"
    ),
}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    model: str = "deepseek-community/DeepSeek-OCR-2"
    served_model_name: str | None = None
    redis_url: str | None = None
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    dtype: str = "auto"
    max_num_seqs: int = 16
    kv_cache_tokens: int = 0
    gpu_memory_utilization: float = 0.9
    max_prefill_tokens: int = 2048
    worker_concurrency: int = 16
    prepare_workers: int = 2
    mode: str | None = None
    default_dpi: int = 144
    max_dpi: int = 300
    max_pages: int = 500
    max_document_bytes: int = 50 * 1024 * 1024
    max_request_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 40_000_000
    url_connect_timeout: float = 5.0
    url_read_timeout: float = 30.0
    url_max_redirects: int = 3
    url_allowed_hosts: tuple[str, ...] = ()
    url_allow_private: bool = False
    job_retention: int = 86400
    shard_pages: int = 16
    job_time_limit: int = 3600
    redelivery_timeout: int = 3900
    ngram_size: int = 30
    ngram_window: int = 90
    shutdown_grace: int = 30
    heartbeat_interval: float = 5.0
    worker_timeout: float = 30.0
    switch_timeout: float = 300.0
    rate_limit_rpm: int = 0
    max_concurrent_jobs: int = 0
    max_queued_pages: int = 10_000
    max_queued_interactive_pages: int = 1_000
    max_image_tokens: int = 1_000_000
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    ui: bool = True

    @property
    def model_name(self) -> str:
        """The id clients send as `model` (and see in /v1/models)."""
        return self.served_model_name or self.model

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def document_limits(self) -> DocumentLimits:
        return DocumentLimits(
            max_bytes=self.max_document_bytes,
            max_pages=self.max_pages,
            max_pixels=self.max_pixels,
            max_dpi=self.max_dpi,
        )


HELP: dict[str, str] = {
    "model": "hub id or local directory of a DeepSeek-OCR-2 or DeepSeek-OCR (v1) checkpoint",
    "served_model_name": "model id clients use (default: the value of model)",
    "redis_url": "Redis URL: the API queues jobs for `ocrserve worker` processes; unset = embedded mode",
    "api_keys": "comma-separated keys; when set, /v1/* requires `Authorization: Bearer <key>`",
    "admin_keys": (
        "comma-separated keys for /v1/devices/*; when api_keys or admin_keys is set, those endpoints require one"
    ),
    "host": "address the HTTP server binds",
    "port": "port the HTTP server listens on",
    "device": "auto (CUDA if available, else CPU), cpu, cuda or cuda:N",
    "dtype": "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16 or float32",
    "max_num_seqs": "pages decoding at once in the model's running batch, all jobs together",
    "kv_cache_tokens": (
        "KV cache positions for the running batch (slots x slot length); pages wait while it is full. "
        "0 = auto: on a GPU what gpu_memory_utilization leaves free after loading, on a CPU no limit"
    ),
    "gpu_memory_utilization": "share of the GPU's memory the worker may fill (weights, activations, KV cache)",
    "max_prefill_tokens": "prompt tokens prefilled per decode step (a longer prompt is split into chunks of this size)",
    "worker_concurrency": (
        "jobs one worker process runs at once over its one model (the embedded server: per lane, interactive and "
        "background)"
    ),
    "prepare_workers": "threads rasterizing and preprocessing pages ahead of the model",
    "mode": "resolution mode when a request names none (gundam, base; v1 also tiny, small, large); unset = gundam",
    "default_dpi": "PDF rasterization DPI when the request names none",
    "max_dpi": "largest DPI a request may ask for",
    "max_pages": "most pages per request (all documents together)",
    "max_document_bytes": "largest document (decoded bytes) per image or file part",
    "max_request_bytes": "largest HTTP request body",
    "max_pixels": "largest page raster or image, in pixels",
    "url_connect_timeout": "seconds to connect when fetching an image URL",
    "url_read_timeout": "seconds to wait for data when fetching an image URL",
    "url_max_redirects": "redirects followed when fetching a URL (each hop re-checked)",
    "url_allowed_hosts": "comma-separated hosts (or *.domain) URLs may point to; empty = any public host",
    "url_allow_private": "allow URLs resolving to private, loopback or link-local addresses",
    "job_retention": "seconds a job's record, events and documents are kept in Redis",
    "shard_pages": (
        "Celery mode: a job of more pages runs as shards of this many pages, each a job any worker takes, side by "
        "side; 0 = never split"
    ),
    "job_time_limit": "seconds a worker may spend on one job before it is stopped (failed)",
    "redelivery_timeout": (
        "seconds before Celery hands out an unacknowledged job again (the backstop when no live worker saw its "
        "worker die); keep it above job_time_limit"
    ),
    "ui": "serve the web playground at /ui (it calls the API like any client: with keys set, it asks for one)",
    "ngram_size": "repetition guard: n-gram length that may not repeat",
    "ngram_window": "repetition guard: window of recent tokens searched for repeats",
    "shutdown_grace": "seconds `ocrserve serve` lets in-flight requests finish after SIGTERM before it exits",
    "heartbeat_interval": "seconds between a worker's heartbeats to the job store (the registry of /v1/devices/status)",
    "worker_timeout": "seconds without a heartbeat before a worker is shown as lost and its running job is requeued",
    "switch_timeout": "seconds POST /v1/devices/switch waits for each worker to move its model",
    "rate_limit_rpm": (
        "requests per minute per API key, or per client address without keys (POST chat, completions, responses); "
        "0 = no limit"
    ),
    "max_concurrent_jobs": "jobs queued or running at once per API key (or client address); 0 = no limit",
    "max_queued_pages": "pages waiting in the background queue beyond which new background jobs get a 503",
    "max_queued_interactive_pages": (
        "pages waiting in the interactive queue beyond which new chat, completion and foreground response "
        "requests get a 503"
    ),
    "max_image_tokens": "most vision tokens per request (all pages together), checked before the job is queued",
    "log_level": "debug, info, warning or error",
    "log_format": "text (for people) or json (one JSON object per line, with request_id and job_id)",
}


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _convert(raw: Mapping[str, Any], base: Settings) -> Settings:
    """Apply string values (from env or flags) over `base`, converting and validating them."""
    fields = msgspec.structs.asdict(base)
    for name, value in raw.items():
        default = fields[name]
        fields[name] = tuple(_split(value)) if isinstance(default, tuple) else (value or None)
    try:
        return msgspec.convert(fields, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"invalid setting: {exc}") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    for name, replaced in REMOVED.items():
        if ENV_PREFIX + name.upper() in environ:
            raise SystemExit(f"invalid setting: {replaced}")
    raw = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in Settings.__struct_fields__
        if ENV_PREFIX + name.upper() in environ
    }
    return _convert(raw, Settings())


def add_settings_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """`--foo-bar VALUE` for each setting (values stay strings; `apply_flags` converts them)."""
    for name in names or Settings.__struct_fields__:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag, dest=f"setting_{name}", metavar="VALUE", help=f"{HELP[name]} [{ENV_PREFIX}{name.upper()}]"
        )


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    raw = {
        name: getattr(args, f"setting_{name}")
        for name in Settings.__struct_fields__
        if getattr(args, f"setting_{name}", None) is not None
    }
    return _convert(raw, settings) if raw else settings

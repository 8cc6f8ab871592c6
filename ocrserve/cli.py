"""The `ocrserve` console script: serve (the API), worker (a Celery worker), ocr FILE…, write-checkpoint DIR.

The composition root: the only module that starts the API or a worker; everything it builds comes from the
settings (`ocrserve.settings`).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocr_engine.errors import OcrError
from ocrserve.logs import setup_logging
from ocrserve.settings import add_settings_flags, apply_flags, settings_from_env

if TYPE_CHECKING:
    from ocr_engine.results import PageResult

_ENGINE_SETTINGS = (
    "model",
    "device",
    "dtype",
    "max_num_seqs",
    "kv_cache_tokens",
    "gpu_memory_utilization",
    "max_prefill_tokens",
    "prepare_workers",
    "default_dpi",
    "max_pages",
    "max_pixels",
    "max_dpi",
    "ngram_size",
    "ngram_window",
)
_WORKER_SETTINGS = (
    "redis_url",
    "job_retention",
    "job_time_limit",
    "redelivery_timeout",
    "heartbeat_interval",
    "worker_timeout",
    "worker_concurrency",
    "log_level",
    "log_format",
)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.asgi import create_app

    settings = apply_flags(settings_from_env(), args)
    setup_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=settings.shutdown_grace,
    )


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's own logging config (its start-up lines and access log), with our formatter in JSON mode."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        for formatter in config["formatters"].values():
            formatter.clear()
            formatter["()"] = "ocrserve.logs.JsonFormatter"
    return config


def _ocr(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ocr_engine.annotate import write_annotations
    from ocr_engine.documents import load_document
    from ocr_engine.pipeline import OcrListener
    from ocr_engine.prompts import resolve_instruction
    from ocr_engine.request import OcrRequest, SamplingParams
    from workers.engine_options import EngineOptions
    from workers.model_host import ModelHost

    settings = apply_flags(settings_from_env(), args)
    limits = settings.document_limits
    ocr = ModelHost(EngineOptions.of(settings))
    instruction = resolve_instruction(args.prompt, args.preset)
    for file in args.files:
        document = load_document(file.read_bytes(), name=file.name, pages=args.pages, limits=limits)
        request = OcrRequest(
            prompt=instruction,
            documents=(document,),
            sampling=SamplingParams(max_tokens=args.max_tokens),
            output_format=args.format,
            mode=settings.mode,
            dpi=settings.default_dpi,
        )
        with tqdm(total=request.page_total, desc=file.name, unit="page") as bar:

            class Progress(OcrListener):
                def on_page(self, page: PageResult, pages_total: int) -> None:
                    bar.update(1)

            result = ocr(request, Progress(), False)
        suffix = ".jsonl" if args.format == "layout" else ".md"
        target = (args.output or file.parent) / f"{file.stem}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = result.text
        if args.annotate:
            pages = write_annotations(document, result.pages, request.dpi, limits, target.parent / file.stem)
            if args.format == "markdown":
                text = request.page_separator.join(pages)
        target.write_text(text if args.format == "layout" else text + "\n", encoding="utf-8")  # JSON lines end in one
        print(f"{file} -> {target} ({len(result.pages)} pages, {result.usage.completion_tokens} tokens)")
        if args.min_confidence is not None:
            for line in low_confidence_pages(result.pages, args.min_confidence):
                print(f"  {line}")


def low_confidence_pages(pages: list[PageResult], threshold: float) -> list[str]:
    """A line for each page whose mean confidence is below `threshold`, or that wrote no text: pages to review."""
    lines = []
    for page in pages:
        confidence = page.confidence
        if confidence is None:
            lines.append(f"page {page.index + 1}: no text")
        elif confidence.mean < threshold:
            lines.append(f"page {page.index + 1}: confidence {confidence.mean:.3f} (lowest token {confidence.min:.3f})")
    return lines


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def _worker(args: argparse.Namespace) -> None:
    from workers.celery_worker import check_redis, run_worker

    settings = apply_flags(settings_from_env(), args)
    setup_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        sys.exit("ocrserve worker needs OCRSERVE_REDIS_URL (--redis-url)")
    if not 0 < 3 * settings.heartbeat_interval <= settings.worker_timeout:
        # fewer than three heartbeats per timeout, and one late beat makes a busy worker look lost
        sys.exit(
            "ocrserve worker: OCRSERVE_HEARTBEAT_INTERVAL must be above 0 and at most a third of "
            f"OCRSERVE_WORKER_TIMEOUT (got {settings.heartbeat_interval:g} and {settings.worker_timeout:g})"
        )
    if problem := check_redis(settings.redis_url):
        sys.exit(f"ocrserve worker: {problem}")  # before loading the model, and not Celery's endless retries
    run_worker(settings)


def _write_checkpoint(args: argparse.Namespace) -> None:
    from ocr_engine.testing import CHECKPOINT_WRITERS

    path = CHECKPOINT_WRITERS[args.family](args.directory, seed=args.seed)
    print(f"wrote a tiny random {args.family} checkpoint to {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrserve", description="OpenAI-compatible document OCR with DeepSeek-OCR")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (embedded mode unless OCRSERVE_REDIS_URL is set)")
    add_settings_flags(serve)
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run a Celery worker that loads the model and runs queued jobs")
    add_settings_flags(worker, _ENGINE_SETTINGS + _WORKER_SETTINGS)
    worker.set_defaults(run=_worker)

    ocr = commands.add_parser("ocr", help="OCR files locally (no server) into Markdown files")
    ocr.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PDFs or images")
    ocr.add_argument("-o", "--output", type=Path, help="directory for the .md files (default: next to each input)")
    ocr.add_argument("--preset", help="markdown, free_ocr, figure, describe, locate or ocr")
    ocr.add_argument("--prompt", help="instruction text (instead of a preset)")
    ocr.add_argument("--pages", help="pages to read, 1-based, e.g. 1-3,7")
    ocr.add_argument("--max-tokens", type=int, help="most tokens generated per page")
    ocr.add_argument(
        "--format",
        choices=["markdown", "raw", "layout"],
        default="markdown",
        help="markdown (.md), raw: the model's text with its grounding tags (.md), layout: JSON lines (.jsonl)",
    )
    ocr.add_argument("--raw", dest="format", action="store_const", const="raw", help="same as --format raw")
    ocr.add_argument(
        "--min-confidence",
        type=_fraction,
        metavar="X",
        help="list the pages whose mean token probability is below X (0..1), and those with no text, for review",
    )
    ocr.add_argument(
        "--annotate",
        action="store_true",
        help="also write DIR/<name>/page-<n>.png with the layout boxes drawn and the pictures cropped out of them",
    )
    add_settings_flags(ocr, (*_ENGINE_SETTINGS, "mode"))
    ocr.set_defaults(run=_ocr)

    write = commands.add_parser("write-checkpoint", help="write a tiny random-weight checkpoint (tests, smoke runs)")
    write.add_argument("directory", type=Path)
    write.add_argument("--family", choices=["deepseek-ocr-2", "deepseek-ocr"], default="deepseek-ocr-2")
    write.add_argument("--seed", type=int, default=0)
    write.set_defaults(run=_write_checkpoint)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except OcrError as exc:
        sys.exit(f"ocrserve: {exc.message}")
    except KeyboardInterrupt:
        sys.exit(130)

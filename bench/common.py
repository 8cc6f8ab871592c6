"""Shared helpers for the benchmark scripts: synthetic pages and PDFs, a tiny checkpoint, timing, RSS, verdicts.

Not a benchmark itself. The scripts import it as `common` (Python puts the script's folder, bench/, on sys.path).
"""

from __future__ import annotations

import random
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymupdf
from PIL import Image, ImageDraw

A4_POINTS = (595.2756, 841.8898)  # 210×297 mm in PDF points: 1191×1684 px at 144 DPI
WORDS = ("invoice", "total", "amount", "date", "page", "table", "figure", "section", "the", "of", "and", "to", "for")


def text_line(rng: random.Random, words: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_text_pdf(pages: int, *, lines: int = 45, seed: int = 0) -> bytes:
    """An A4 PDF of `pages` pages, each with `lines` lines of text drawn with PyMuPDF `insert_text`."""
    rng = random.Random(seed)
    document = pymupdf.open()
    try:
        for number in range(pages):
            page = document.new_page(width=A4_POINTS[0], height=A4_POINTS[1])
            page.insert_text((56, 60), f"Page {number + 1}", fontsize=16)
            for line in range(lines):
                page.insert_text((56, 90 + line * 16), text_line(rng), fontsize=10)
        return document.tobytes()
    finally:
        document.close()


def make_page_image(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """An RGB scan-like page: white paper, lines of dark text, a grey box, and a little noise."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (250, 250, 248))
    draw = ImageDraw.Draw(image)
    step = max(12, height // 60)
    for y in range(step, height - step, step):
        draw.text((width // 20, y), text_line(rng, 20), fill=(20, 20, 20))
    draw.rectangle((width // 2, height // 3, width * 3 // 4, height // 2), fill=(200, 200, 200), outline=(0, 0, 0))
    noise = Image.effect_noise((width, height), 12).convert("RGB")
    return Image.blend(image, noise, 0.05)


@contextmanager
def tiny_checkpoint() -> Iterator[str]:
    """A tiny random-weight DeepSeek-OCR-2 checkpoint in a temporary directory, removed afterwards."""
    from transformers.utils import logging as hf_logging

    from ocr_engine.testing import write_tiny_deepseek_ocr2

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="ocrserve-bench-") as tmp:
        yield str(write_tiny_deepseek_ocr2(Path(tmp) / "tiny-ocr2"))


def synchronize(device: object = None) -> None:
    """Wait for queued CUDA work (a no-op elsewhere) so timings include it."""
    import torch

    if getattr(device, "type", device) == "cuda" or (device is None and torch.cuda.is_available()):
        torch.cuda.synchronize()


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def verdict(ok: bool, what: str) -> bool:
    """Print the PASS/FAIL line of a target and return `ok`."""
    print(f"{'PASS' if ok else 'FAIL'}: {what}")
    return ok

"""Peak resident memory (RSS) while one long PDF job runs through `run_ocr`: does memory stay flat per page?

Writes a tiny random checkpoint, generates an N-page A4 text PDF (default 300) and OCRs it in one request with
`max_tokens=1`, so the time goes to rasterizing, preprocessing and prefill, the stages that hold page-sized
buffers. A background thread samples this process's RSS (psutil) every `--interval` seconds; an `OcrListener`
records RSS as each page finishes.

Prints RSS before the job, after the warm-up milestone (page 50 of 300, i.e. 1/6 of the pages), at the middle
milestone (page 150, 1/2), and the peak over the whole job; then the growth per 100 pages after warm-up (the
least-squares slope of per-page RSS from the warm-up milestone on; target: flat, under `--target-mib` = 50 MiB
per 100 pages), plus the wall time and pages/s. `--trim` calls glibc's `malloc_trim(0)` before each per-page
reading: growth that disappears with it is freed memory the allocator kept (fragmentation after the large
transient buffers of each prefill), not live objects; growth that stays is a leak.

With the tiny model on 2 CPU cores the default 300 pages take 3-5 minutes, dominated by the vision encoder's
prefill (one A4 page at a time, its transient buffers freed before the next); `--pages 60` gives a quicker,
rougher reading. `--max-num-seqs` bounds the running batch (pages decoding at once).

    python bench/memory.py [--pages 300] [--max-num-seqs 16] [--dpi 144]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import threading
import time

from common import make_text_pdf, rss_mib, tiny_checkpoint, verdict

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.results import PageResult
from ocr_engine.scheduler import SchedulerLimits


class RssSampler(threading.Thread):
    """Samples RSS every `interval` seconds until stopped; keeps the peak."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_mib()
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.peak = max(self.peak, rss_mib())
            self.samples += 1


def malloc_trim() -> None:
    """Ask glibc to hand freed heap memory back to the OS (no-op where there is no glibc)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class RssPerPage(OcrListener):
    def __init__(self, pages: int, trim: bool) -> None:
        self.rss: list[float] = []
        self.pages = pages
        self.trim = trim
        self.started = time.perf_counter()

    def on_page(self, page: PageResult, pages_total: int) -> None:
        if self.trim:
            malloc_trim()
        self.rss.append(rss_mib())
        done = len(self.rss)
        if done % max(1, self.pages // 10) == 0:
            elapsed = time.perf_counter() - self.started
            print(f"  {done:4d} pages  {elapsed:6.1f} s  RSS {self.rss[-1]:7.1f} MiB", flush=True)


def slope_per_100(values: list[float]) -> float:
    """Least-squares slope of `values` against their index, times 100."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    var = sum((x - mean_x) ** 2 for x in range(n))
    return cov / var * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--interval", type=float, default=0.05, help="RSS sampling period in seconds")
    parser.add_argument(
        "--trim", action="store_true", help="call glibc malloc_trim(0) before each per-page reading (diagnosis)"
    )
    parser.add_argument("--target-mib", type=float, default=50.0, help="most growth per 100 pages to pass")
    args = parser.parse_args()
    warm, mid = max(1, round(args.pages / 6)), max(1, round(args.pages / 2))

    limits = DocumentLimits(max_pages=max(args.pages, 500))
    document = load_document(make_text_pdf(args.pages), name="bench.pdf", limits=limits)
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=1), dpi=args.dpi)
    with tiny_checkpoint() as model:
        scheduler_limits = SchedulerLimits(max_num_seqs=args.max_num_seqs)
        engine = OcrEngine(load_adapter(model, device="cpu"), limits=scheduler_limits)
        before = rss_mib()
        print(
            f"RSS before the job (model loaded, {len(document.data) / 2**20:.1f} MiB PDF in memory): {before:.1f} MiB"
        )
        listener = RssPerPage(args.pages, args.trim)
        sampler = RssSampler(args.interval)
        sampler.start()
        start = time.perf_counter()
        try:
            result = run_ocr(engine, request, limits=limits, listener=listener)
        finally:
            elapsed = time.perf_counter() - start
            sampler.stopped.set()
            sampler.join()

    rss = listener.rss
    growth = slope_per_100(rss[warm - 1 :])
    print(f"pages: {len(result.pages)} in {elapsed:.1f} s = {len(result.pages) / elapsed:.2f} pages/s")
    print(f"RSS after {warm} pages: {rss[warm - 1]:.1f} MiB")
    print(f"RSS after {mid} pages: {rss[mid - 1]:.1f} MiB")
    print(f"RSS after {len(rss)} pages: {rss[-1]:.1f} MiB")
    print(
        f"peak RSS over {len(rss)} pages: {sampler.peak:.1f} MiB"
        f" ({sampler.peak - before:+.1f} over the start; {sampler.samples} samples)"
    )
    print(
        f"growth after warm-up: {growth:.2f} MiB per 100 pages (slope, pages {warm}..{len(rss)}); "
        f"end minus page {warm}: {rss[-1] - rss[warm - 1]:+.1f} MiB"
    )
    verdict(growth < args.target_mib, f"RSS growth {growth:.2f} MiB per 100 pages < {args.target_mib:g} MiB")


if __name__ == "__main__":
    main()

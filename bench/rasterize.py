"""PDF rasterization throughput of `iter_document_pages` (PyMuPDF → RGB PIL image), the first stage of every job.

Generates an N-page A4 PDF with text lines (PyMuPDF `insert_text`), loads it with `load_document` and walks all
pages with `iter_document_pages` at the given DPI, as the pipeline does. Prints pages/s over the whole walk and
the median milliseconds per page (time from asking the iterator for a page until it yields the image), best of
`--repeat` walks after one warm-up walk. Target: at least `--target` pages/s (default 20, i.e. rasterizing
should never be what a GPU waits on: a GPU decodes a page in hundreds of milliseconds).

    python bench/rasterize.py [--pages 50] [--dpi 144] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import make_text_pdf, verdict

from ocr_engine.documents import DocumentLimits, iter_document_pages, load_document


def walk(document, dpi: int, limits: DocumentLimits) -> list[float]:
    """Seconds per page for one pass over every page."""
    times = []
    pages = iter_document_pages(document, dpi, limits)
    while True:
        start = time.perf_counter()
        image = next(pages, None)
        if image is None:
            return times
        times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--repeat", type=int, default=3, help="timed walks over the PDF; the best is reported")
    parser.add_argument("--target", type=float, default=20.0, help="pages/s to pass")
    args = parser.parse_args()

    limits = DocumentLimits(max_pages=max(args.pages, 1))
    data = make_text_pdf(args.pages)
    document = load_document(data, name="bench.pdf", limits=limits)
    first = next(iter_document_pages(document, args.dpi, limits))
    print(
        f"PDF: {args.pages} A4 pages, {len(data) / 1024:.0f} KiB; raster {first.width}x{first.height} at {args.dpi} DPI"
    )

    walk(document, args.dpi, limits)  # warm-up
    walks = [walk(document, args.dpi, limits) for _ in range(args.repeat)]
    best = min(walks, key=sum)
    pages_per_s = len(best) / sum(best)
    print(f"pages/s: {pages_per_s:.1f} (best of {args.repeat} walks; {sum(best):.2f} s for {len(best)} pages)")
    print(f"per page: median {statistics.median(best) * 1000:.1f} ms, max {max(best) * 1000:.1f} ms")
    verdict(pages_per_s >= args.target, f"rasterization {pages_per_s:.1f} pages/s >= {args.target:g} pages/s")


if __name__ == "__main__":
    main()

"""Image preprocessing throughput: our path against transformers' `DeepseekOcr2ImageProcessorPil`, same pages.

Ours, per page: `preprocess_page` (tiles + global view, Pillow's uint8 canvases) then both normalised to float32
for the CPU (what `DeepseekOcr2Adapter.prepare` does for a model on the CPU, minus tokenization).
Measured two ways: one page at a time on one thread, and as the pipeline runs it (`BatchPrefetcher`: pages
prepared concurrently by `--workers` threads, up to one batch ahead of the batch being consumed).
The target is judged on the pipeline's path. Reference, per page:
`processor(images=[page], return_tensors="pt")` → `pixel_values`, `pixel_values_local`, `num_local_patches`.
Pages are a mix of realistic sizes: A4 at 144 DPI (1191x1684, 6 tiles), a wide 2000x1000 scan and a small
600x400 image (global view only). Every path runs the whole mix once to warm up, then `--rounds` passes each,
interleaved. The median pass counts: on a shared 2-core VM single passes of either path swing by ±30%, and the
best pass measures the luckiest moment rather than the path; the best-pass ratio is printed too.

Prints pages/s of both, the speed ratio (target: ours >= 3x faster) and the largest absolute difference
between the two outputs over every global view and tile (target <= 1e-2, with equal tile counts). For
information it also prints ours without normalisation (uint8 canvases only): on a GPU worker normalisation runs
on the device, so that is the CPU cost there. Both paths share Pillow's bicubic resize, which alone is about 45% of
the reference's time on a CPU, so one page at a time the ratio stays near 2x; the rest comes from the workers.

    python bench/preprocess.py [--rounds 11] [--workers 2] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import make_page_image, verdict
from transformers import DeepseekOcr2ImageProcessorPil

from ocr_engine.models.deepseek_ocr2 import ImageGeometry, global_view, local_tiles, normalisation, preprocess_page
from ocr_engine.pixels import Canvas, prepared
from ocr_engine.prefetch import BatchPrefetcher

SIZES = ((1191, 1684), (2000, 1000), (600, 400))
CPU = torch.device("cpu")


def ours(page, geometry: ImageGeometry) -> tuple[torch.Tensor, torch.Tensor | None]:
    views = preprocess_page(page, geometry)
    view, tiles = (prepared(views[name], normalisation(geometry), CPU, torch.float32) for name in ("global", "tiles"))
    return view, tiles


def pipeline(pages: list, geometry: ImageGeometry, workers: int, batch: int = 4) -> None:
    prefetcher = BatchPrefetcher(lambda page: ours(page, geometry), workers)
    for _ in prefetcher.run(pages, batch):
        pass


def reference(page, processor: DeepseekOcr2ImageProcessorPil) -> tuple[torch.Tensor, torch.Tensor | None]:
    out = processor(images=[page], return_tensors="pt")
    return out["pixel_values"], out.get("pixel_values_local")


def uint8_only(page, geometry: ImageGeometry) -> tuple[Canvas, Canvas | None]:
    return global_view(page, geometry), local_tiles(page, geometry)


def throughputs(paths: dict, pages: list, rounds: int) -> dict[str, list[float]]:
    """Pages/s of every pass of each path over the pages, after one warm-up pass; passes are interleaved so
    that a slow spell of the machine falls on all paths alike."""
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(rounds + 1):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn(pages)
            if round_:
                rates[name].append(len(pages) / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11, help="timed passes over the page mix")
    parser.add_argument("--workers", type=int, default=2, help="prepare workers of the pipeline path")
    parser.add_argument("--repeat", type=int, default=4, help="times the page mix is repeated per pass")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    processor = DeepseekOcr2ImageProcessorPil()
    geometry = ImageGeometry.from_processor(processor, patch_size=16, downsample=4)
    pages = [make_page_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]

    worst, same_tiles = 0.0, True
    for page in pages:
        (view, tiles), (ref_view, ref_tiles) = ours(page, geometry), reference(page, processor)
        count, ref_count = (0 if t is None else t.shape[0] for t in (tiles, ref_tiles))
        print(f"page {page.width}x{page.height}: tiles ours {count}, reference {ref_count}")
        same_tiles &= count == ref_count and view.shape == ref_view.shape
        if view.shape == ref_view.shape:
            worst = max(worst, (view - ref_view).abs().max().item())
        if count and count == ref_count:
            worst = max(worst, (tiles - ref_tiles).abs().max().item())

    paths = {
        "ours": lambda pages: [ours(page, geometry) for page in pages],
        "pipeline": lambda pages: pipeline(pages, geometry, args.workers),
        "reference": lambda pages: [reference(page, processor) for page in pages],
        "ours_uint8": lambda pages: [uint8_only(page, geometry) for page in pages],
    }
    passes = throughputs(paths, pages * args.repeat, args.rounds)
    rates = {name: statistics.median(values) for name, values in passes.items()}
    ratio = rates["pipeline"] / rates["reference"]
    print(
        f"torch threads: {torch.get_num_threads()}; median of {args.rounds} passes over {len(pages) * args.repeat}"
        " pages"
    )
    print(f"ours, one page at a time (uint8 canvases + CPU float32): {rates['ours']:.2f} pages/s")
    print(f"ours as the pipeline runs it ({args.workers} prepare workers):   {rates['pipeline']:.2f} pages/s")
    print(f"reference DeepseekOcr2ImageProcessorPil:    {rates['reference']:.2f} pages/s")
    print(f"speed ratio one page at a time / reference: {rates['ours'] / rates['reference']:.2f}x")
    print(f"speed ratio pipeline / reference: {ratio:.2f}x")
    spread = {name: f"{min(values):.1f}-{max(values):.1f}" for name, values in passes.items()}
    print(f"pages/s range over the passes: {spread}")
    best_ratio = max(passes["pipeline"]) / max(passes["reference"])
    print(f"info: speed ratio pipeline / reference, best passes: {best_ratio:.2f}x")
    uint8_ratio = rates["ours_uint8"] / rates["reference"]
    print(
        f"info: ours uint8 only (the CPU share on a GPU worker): {rates['ours_uint8']:.2f} pages/s,"
        f" {uint8_ratio:.2f}x the reference"
    )
    print(f"max abs difference: {worst:.3g}")
    verdict(ratio >= 3.0, f"the pipeline's path is {ratio:.2f}x the reference's speed (target >= 3x)")
    verdict(same_tiles and worst <= 1e-2, f"max abs difference {worst:.3g} <= 1e-2 with equal tile counts")


if __name__ == "__main__":
    main()

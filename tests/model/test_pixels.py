"""Normalisation of page canvases: both paths give the textbook formula, tile by tile in row-major order, and the
buffer pool never hands out memory a tensor still uses."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from ocr_engine.pixels import (
    BufferPool,
    Canvas,
    Normalisation,
    normalise_numpy,
    normalise_torch,
    prepared,
    to_pixels,
)

NORMALISATION = Normalisation(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # distinct per channel
CPU = torch.device("cpu")
META = torch.device("meta")  # stands in for an accelerator: anything that is not the CPU


@pytest.fixture
def canvas() -> Canvas:
    """Three columns by two rows of 8-pixel tiles, random bytes, as Pillow hands them over (read-only)."""
    rng = np.random.default_rng(7)
    return Canvas.of(Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)), grid=(3, 2))


def textbook(canvas: Canvas) -> torch.Tensor:
    side, (cols, rows) = canvas.tile_side, canvas.grid
    tiles = [
        canvas.array[row * side : (row + 1) * side, col * side : (col + 1) * side]
        for row in range(rows)
        for col in range(cols)
    ]
    scaled = torch.tensor(np.stack(tiles), dtype=torch.float64).permute(0, 3, 1, 2) / 255.0
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (NORMALISATION.mean, NORMALISATION.std))
    return ((scaled - mean) / std).float()


def test_canvas_reports_its_grid(canvas):
    assert (canvas.count, canvas.tile_side, canvas.tile_shape()) == (6, 8, (2, 3, 3, 8, 8))


def test_numpy_and_torch_paths_both_give_the_formula_in_tile_order(canvas):
    expected = textbook(canvas)
    torch.testing.assert_close(normalise_numpy(canvas, NORMALISATION), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(normalise_torch(canvas, NORMALISATION, CPU), expected, atol=1e-5, rtol=0)


def test_views_are_normalised_while_prepared_only_for_the_cpu(canvas):
    early = prepared(canvas, NORMALISATION, CPU, torch.bfloat16)
    assert isinstance(early, torch.Tensor) and early.dtype == torch.bfloat16 and early.shape == (6, 3, 8, 8)
    kept = prepared(canvas, NORMALISATION, META, torch.bfloat16)
    assert isinstance(kept, Canvas) and kept.grid == canvas.grid and kept.array.flags.writeable
    assert np.array_equal(kept.array, canvas.array)
    assert prepared(None, NORMALISATION, CPU, torch.float32) is None


@pytest.mark.parametrize("prepared_for", [CPU, META])
def test_a_view_prepared_for_one_device_reaches_another(canvas, prepared_for):
    """The model may have switched device between prepare and its batch: either form gets there."""
    view = prepared(canvas, NORMALISATION, prepared_for, torch.float32)
    on_cpu = to_pixels(view, NORMALISATION, CPU, torch.float32)
    torch.testing.assert_close(on_cpu, textbook(canvas), atol=1e-5, rtol=0)
    on_meta = to_pixels(view, NORMALISATION, META, torch.bfloat16)
    assert (on_meta.device.type, on_meta.dtype, on_meta.shape) == ("meta", torch.bfloat16, (6, 3, 8, 8))
    assert to_pixels(None, NORMALISATION, CPU, torch.float32) is None


def test_a_buffer_returns_to_the_pool_when_its_last_view_is_gone():
    pool = BufferPool()
    tensor = pool.take((2, 3, 8, 8))
    assert (tensor.shape, tensor.dtype) == ((2, 3, 8, 8), torch.float32)
    first = tensor.data_ptr()
    flat = tensor.view(-1)
    del tensor
    assert pool.take((2, 3, 8, 8)).data_ptr() != first  # still held by a view: not handed out again
    del flat
    assert pool.free_bytes > 0
    assert pool.take((6, 64)).data_ptr() == first  # same size, any shape


def test_views_prepared_for_the_cpu_use_the_pool(canvas):
    first = prepared(canvas, NORMALISATION, CPU, torch.float32)
    address = first.data_ptr()
    del first
    assert prepared(canvas, NORMALISATION, CPU, torch.float32).data_ptr() == address


def test_the_pool_keeps_no_more_than_its_cap():
    pool = BufferPool(max_free_bytes=3 * 4096)
    arrays = [pool.take((1024,)) for _ in range(5)]
    del arrays
    assert pool.free_bytes == 3 * 4096


def test_pooled_views_prepared_on_many_threads_never_share_memory():
    """A buffer handed out while a tensor still uses it would corrupt a page: check every view against a fresh
    normalisation while other threads keep taking and dropping buffers of the same sizes."""
    rng = np.random.default_rng(3)
    canvases = [
        Canvas.of(Image.fromarray(rng.integers(0, 256, (16 * rows, 16 * cols, 3), dtype=np.uint8)), (cols, rows))
        for rows, cols in ((1, 1), (2, 3), (1, 1), (2, 3))
    ]
    failures: list[int] = []

    def work(seed: int) -> None:
        held: list[tuple[int, torch.Tensor]] = []
        for step in range(200):
            index = (seed + step) % len(canvases)
            held.append((index, prepared(canvases[index], NORMALISATION, CPU, torch.float32)))
            if len(held) > 3:
                index, view = held.pop(0)
                if not torch.equal(view, normalise_numpy(canvases[index], NORMALISATION)):
                    failures.append(index)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures

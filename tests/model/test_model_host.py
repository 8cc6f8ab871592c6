"""Moving a loaded model between devices (CPU-only here: the dtype changes, the device stays the CPU)."""

from __future__ import annotations

import threading

import pymupdf
import pytest
import torch

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.errors import InvalidInput
from ocr_engine.pipeline import OcrListener
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.results import TokenLogprob
from workers.engine_options import EngineOptions
from workers.model_host import ModelHost
from workers.reporter import WorkerReporter


def three_page_request() -> OcrRequest:
    pdf = pymupdf.open()
    for index in range(3):
        pdf.new_page(width=200, height=260).insert_text((24, 48), f"Page {index + 1}", fontsize=14)
    document = load_document(pdf.tobytes(), limits=DocumentLimits())
    return OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=24))


@pytest.fixture
def host(tiny_checkpoint) -> ModelHost:
    return ModelHost(EngineOptions(model=str(tiny_checkpoint), device="cpu", max_num_seqs=1))


class DtypeOfEachToken(OcrListener):
    """Records the model's dtype at every streamed token; starts `on_first_token` at the first one."""

    def __init__(self, host: ModelHost, on_first_token: threading.Thread) -> None:
        self.host = host
        self.on_first_token = on_first_token
        self.dtypes: dict[int, set[torch.dtype]] = {}

    def on_delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        first = not self.dtypes
        self.dtypes.setdefault(page, set()).add(self.host.engine.adapter.dtype)
        if first:  # after reading the dtype: the move cannot have happened before it was asked for
            self.on_first_token.start()


def test_a_move_happens_between_steps_and_the_running_pages_go_on(host):
    """The move is asked for at the first token; it happens at a step boundary, the running row's cache moves
    with the model, and the job finishes every page."""
    move = threading.Thread(target=host.engine.move_to, args=(torch.device("cpu"), torch.bfloat16))
    listener = DtypeOfEachToken(host, move)
    result = host(three_page_request(), listener)
    move.join()

    assert [page.index for page in result.pages] == [0, 1, 2]
    assert all(page.usage.completion_tokens for page in result.pages)
    assert torch.float32 in listener.dtypes[0], "the first page started before the move"
    assert listener.dtypes[2] == {torch.bfloat16}, "the last page ran after it"
    assert host.engine.scheduler.decoder.cache.dtype == torch.bfloat16
    model = host.engine.adapter.model
    assert {p.dtype for p in model.parameters() if p.is_floating_point()} == {torch.bfloat16}
    assert any(b.dtype == torch.float32 for b in model.buffers()), "buffers (rotary tables) keep their dtype"


def test_switch_reports_devices_and_refuses_unknown_ones(host):
    assert host.switch("auto") == ("cpu", "cpu")
    assert host.dtype == "float32"
    with pytest.raises(InvalidInput, match=r"'gpu:0' is not available; available devices: cpu"):
        host.switch("gpu:0")

    reporter = WorkerReporter("embedded", "tiny")
    assert not reporter.switch("cpu").success, "nothing to move before the model is loaded"
    reporter.ready(host)
    result = reporter.switch("cpu")
    assert (result.success, result.previous_device, result.current_device) == (True, "cpu", "cpu")
    failed = reporter.switch("gpu:3")
    assert not failed.success and "gpu:3" in failed.message and failed.current_device == "cpu"
    assert reporter.snapshot().state == "ready"


def test_a_move_that_fails_halfway_puts_every_tensor_back(host, monkeypatch):
    model = host.engine.adapter.model
    before = {name: (p.device, p.dtype) for name, p in model.named_parameters()}

    def out_of_memory_halfway(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        parameters = list(model.parameters())
        for parameter in parameters[: len(parameters) // 2]:
            parameter.data = parameter.data.to(dtype)
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("ocr_engine.engine.move_model", out_of_memory_halfway)
    reporter = WorkerReporter("embedded", "tiny")
    reporter.ready(host)
    result = reporter.switch("cpu")
    assert not result.success and "out of memory" in result.message and result.current_device == "cpu"
    assert {name: (p.device, p.dtype) for name, p in model.named_parameters()} == before
    assert reporter.snapshot().state == "ready"
    assert host(three_page_request(), OcrListener()).pages, "the model still runs"


def test_a_model_that_cannot_be_put_back_makes_the_worker_failed(host, monkeypatch):
    def fail(*_: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("ocr_engine.engine.move_model", fail)
    monkeypatch.setattr("ocr_engine.placement.Placement.restore", fail)
    reporter = WorkerReporter("embedded", "tiny")
    reporter.ready(host)
    result = reporter.switch("cpu")
    assert not result.success and "moving it back" in result.message
    assert reporter.snapshot().state == "failed"


def test_a_model_step_that_never_returns_hands_the_jobs_over_and_exits(host, monkeypatch):
    """The model thread stuck in one step (a wedged accelerator call, here a step that waits for an event)
    shows in `stalled_for`; the worker's watch then requeues its jobs and exits the process."""
    from ocr_engine.request import SamplingParams
    from tests.model.rows import Collect
    from workers import job_execution

    scheduler = host.engine.scheduler
    release = threading.Event()
    iterate = scheduler._iterate
    monkeypatch.setattr(scheduler, "_iterate", lambda: release.wait(60) and iterate())
    requeued: list[str] = []

    def exit_(status: int) -> None:
        raise SystemExit(status)

    monkeypatch.setattr(job_execution.os, "_exit", exit_)
    sink = Collect()
    host.engine.submit(host.engine.adapter.prepare("Hello", None, "gundam"), SamplingParams(max_tokens=2), sink)
    try:
        with pytest.raises(SystemExit) as exited:
            job_execution.watch_the_model(scheduler.stalled_for, 0.2, requeued.append)
        assert exited.value.code == 70 and "hung" in requeued[0]
        assert scheduler.stalled_for() > 0.2
    finally:
        release.set()
    assert sink.result()[1] == "length", "the job goes on once the step returns"


def test_a_switch_works_the_kv_budget_out_again_on_the_new_device(host, monkeypatch):
    """The budget comes from the device the model lands on (a GPU's free memory): asked for after the move, in
    the new dtype, and in force for what is admitted next; a budget that cannot be had undoes the move."""
    asked: list[tuple[torch.device, torch.dtype]] = []

    def budget(device: torch.device, dtype: torch.dtype) -> int:
        asked.append((device, dtype))
        return 4096

    assert host.engine.stats().kv_cache_budget is None  # a CPU, no OCRSERVE_KV_CACHE_TOKENS
    monkeypatch.setattr(host, "kv_budget", budget)
    host.switch("cpu")
    assert asked == [(torch.device("cpu"), torch.float32)]
    assert host.engine.stats().kv_cache_budget == 4096

    def no_memory(device: torch.device, dtype: torch.dtype) -> int:
        raise ValueError("no GPU memory is left for the KV cache")

    monkeypatch.setattr(host, "kv_budget", no_memory)
    with pytest.raises(ValueError, match="no GPU memory"):
        host.engine.move_to(torch.device("cpu"), torch.bfloat16, kv_budget=host.kv_budget)
    assert host.engine.adapter.dtype == torch.float32, "the move was undone"
    assert host.engine.stats().kv_cache_budget == 4096

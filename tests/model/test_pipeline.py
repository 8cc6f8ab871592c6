"""run_ocr: lazy pages, ordered streaming, page separators, stop sequences — with the real tiny model."""

from __future__ import annotations

import msgspec
import pymupdf
import pytest

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.results import PageResult, TokenLogprob

LIMITS = DocumentLimits()


def pdf_bytes(pages: int) -> bytes:
    doc = pymupdf.open()
    for number in range(pages):
        doc.new_page(width=300, height=400).insert_text((40, 60), f"Page {number + 1} invoice")
    return doc.tobytes()


class Recorder(OcrListener):
    def __init__(self) -> None:
        self.deltas: list[tuple[int, str]] = []
        self.pages: list[int] = []

    def on_delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        self.deltas.append((page, text))

    def on_page(self, page: PageResult, pages_total: int) -> None:
        self.pages.append(page.index)


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> OcrEngine:
    return OcrEngine(load_adapter(str(tiny_checkpoint), device="cpu"))


def test_pages_stream_in_order_and_join_with_the_separator(engine):
    """Sampled with a seed, each page writes a text of its own (page k draws from its own stream: the random model
    alone writes the same text for every page), so where each page's text went shows: in page order, and each
    page's text is what that page gives read alone."""
    data = pdf_bytes(3)
    sampling = SamplingParams(max_tokens=6, temperature=1.0, seed=11)
    document = load_document(data, name="doc.pdf", limits=LIMITS)
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=sampling, page_separator="\n@@\n")
    recorder = Recorder()
    result = run_ocr(engine, request, limits=LIMITS, listener=recorder)
    texts = [p.text for p in result.pages]
    assert len(set(texts)) == 3, f"the pages must differ for this test to tell them apart: {texts}"
    assert [p.index for p in result.pages] == sorted(recorder.pages) == [0, 1, 2]  # told as each one finishes
    assert "".join(text for _, text in recorder.deltas) == result.text
    assert result.text == "\n@@\n".join(texts)
    assert [page for page, _ in recorder.deltas] == sorted(page for page, _ in recorder.deltas)
    for index, text in enumerate(texts):
        alone = load_document(data, name="doc.pdf", pages=str(index + 1), limits=LIMITS)
        single = msgspec.structs.replace(request, documents=(alone,), first_page=index)
        assert run_ocr(engine, single, limits=LIMITS).text == text
    assert result.usage.completion_tokens == sum(p.usage.completion_tokens for p in result.pages)
    assert all(p.usage.prompt_tokens > 257 for p in result.pages)


def test_a_resumed_job_runs_only_the_pages_an_earlier_run_did_not_finish(engine):
    """A job handed over with pages 0 and 2 finished: only 1 and 3 run; the text and the result are the
    undisturbed run's, the finished pages' text sent again in its turn."""
    document = load_document(pdf_bytes(4), name="doc.pdf", limits=LIMITS)
    request = OcrRequest(
        prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=6), page_separator="\n@@\n"
    )
    whole = run_ocr(engine, request, limits=LIMITS)
    recorder = Recorder()
    finished = {0: whole.pages[0], 2: whole.pages[2]}
    resumed = run_ocr(engine, request, limits=LIMITS, listener=recorder, finished=finished)
    assert sorted(recorder.pages) == [1, 3]
    assert [(p.index, p.text, p.usage) for p in resumed.pages] == [(p.index, p.text, p.usage) for p in whole.pages]
    assert resumed.text == whole.text == "".join(text for _, text in recorder.deltas)
    assert [page for page, _ in recorder.deltas] == sorted(page for page, _ in recorder.deltas)
    everything = run_ocr(engine, request, limits=LIMITS, listener=Recorder(), finished=dict(enumerate(whole.pages)))
    assert everything.text == whole.text


def test_page_selection_and_raw_output(engine):
    document = load_document(pdf_bytes(3), pages="2", limits=LIMITS)
    request = OcrRequest(
        prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=4), output_format="raw"
    )
    result = run_ocr(engine, request, limits=LIMITS)
    assert len(result.pages) == 1
    assert result.pages[0].text == result.pages[0].raw_text


def test_stop_sequence_truncates_the_answer(engine):
    free = run_ocr(engine, OcrRequest(prompt="Hello", sampling=SamplingParams(max_tokens=24)), limits=LIMITS)
    text = free.pages[0].raw_text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), f"generated text too short to pick a stop sequence: {text!r}"
    stopped = run_ocr(
        engine, OcrRequest(prompt="Hello", sampling=SamplingParams(max_tokens=24, stop=(stop,))), limits=LIMITS
    )
    assert stopped.pages[0].raw_text == text[: text.index(stop)]
    assert stopped.finish_reason == "stop"

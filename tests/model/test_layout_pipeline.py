"""run_ocr with output_format="layout" on the real tiny model: one JSON line per page, streamed whole."""

from __future__ import annotations

import json

import pymupdf
import pytest
from PIL import Image

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.engine import OcrEngine
from ocr_engine.models.loading import load_adapter
from ocr_engine.pipeline import OcrListener, run_ocr
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.results import Confidence, PageResult, TokenLogprob, Usage

LIMITS = DocumentLimits()
PAGE_POINTS = [(300, 400), (200, 260)]  # two sizes, so a page cannot be given the other's size
DPI = 90  # pixels = points * 90 / 72


class Deltas(OcrListener):
    def __init__(self) -> None:
        self.deltas: list[tuple[int, str]] = []

    def on_delta(self, page: int, text: str, logprobs: list[TokenLogprob]) -> None:
        self.deltas.append((page, text))


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> OcrEngine:
    return OcrEngine(load_adapter(str(tiny_checkpoint), device="cpu"))


def _pdf() -> bytes:
    document = pymupdf.open()
    for width, height in PAGE_POINTS:
        document.new_page(width=width, height=height).insert_text((40, 60), "Invoice 42")
    return document.tobytes()


def test_layout_is_one_json_line_per_page_each_sent_as_one_delta(engine: OcrEngine) -> None:
    document = load_document(_pdf(), name="doc.pdf", limits=LIMITS)
    request = OcrRequest(
        prompt="<|grounding|>Convert the document to markdown.",
        documents=(document,),
        sampling=SamplingParams(max_tokens=8),
        output_format="layout",
        dpi=DPI,
    )
    listener = Deltas()
    result = run_ocr(engine, request, limits=LIMITS, listener=listener)

    lines = result.text.split("\n")
    assert lines[-1] == "" and len(lines) == 3  # two lines, each ending in a newline, no page separator
    pages = [json.loads(line) for line in lines[:2]]
    expected_sizes = [(w * DPI // 72, h * DPI // 72) for w, h in PAGE_POINTS]
    assert [p["page"] for p in pages] == [1, 2]
    assert [(p["width"], p["height"]) for p in pages] == expected_sizes
    assert [(p.width, p.height) for p in result.pages] == expected_sizes
    assert all(isinstance(p["blocks"], list) and isinstance(p["text"], str) for p in pages)
    assert listener.deltas == [(0, lines[0] + "\n"), (1, lines[1] + "\n")]
    assert "".join(text for _, text in listener.deltas) == result.text


def test_a_text_only_answer_has_no_page_size(engine: OcrEngine) -> None:
    result = run_ocr(engine, OcrRequest(prompt="Hello", sampling=SamplingParams(max_tokens=4)), limits=LIMITS)
    assert (result.pages[0].width, result.pages[0].height) == (None, None)


def test_cli_annotate_writes_the_markdown_and_a_drawn_png_per_page(tiny_checkpoint, tmp_path) -> None:
    from ocrserve.cli import main

    source = tmp_path / "scan.pdf"
    source.write_bytes(_pdf())
    out = tmp_path / "out"
    flags = ["--model", str(tiny_checkpoint), "--device", "cpu", "--max-tokens", "8", "--default-dpi", str(DPI)]
    main(["ocr", str(source), "-o", str(out), "--annotate", *flags])
    assert (out / "scan.md").read_text(encoding="utf-8").endswith("\n")
    drawn = [Image.open(out / "scan" / f"page-{n}.png") for n in (1, 2)]
    assert [image.size for image in drawn] == [(w * DPI // 72, h * DPI // 72) for w, h in PAGE_POINTS]

    main(["ocr", str(source), "-o", str(out), "--format", "layout", *flags])
    lines = (out / "scan.jsonl").read_text(encoding="utf-8").split("\n")
    pages = [json.loads(line) for line in lines[:-1]]
    assert [page["page"] for page in pages] == [1, 2]
    assert all(0 < page["confidence"]["mean"] <= 1 for page in pages)


def test_cli_lists_the_pages_below_the_confidence_asked_for(tiny_checkpoint, tmp_path, capsys) -> None:
    """A random model is never sure (every page below 1), and no page is below 0."""
    from ocrserve.cli import main

    source = tmp_path / "scan.pdf"
    source.write_bytes(_pdf())
    flags = ["--model", str(tiny_checkpoint), "--device", "cpu", "--max-tokens", "8", "--default-dpi", str(DPI)]
    listed = {}
    for threshold in ("1", "0"):
        main(["ocr", str(source), "-o", str(tmp_path), "--min-confidence", threshold, *flags])
        listed[threshold] = [line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == {"1": ["page 1", "page 2"], "0": []}
    with pytest.raises(SystemExit):
        main(["ocr", str(source), "--min-confidence", "1.5", *flags])


def test_low_confidence_pages_are_below_the_threshold_or_without_text() -> None:
    from ocrserve.cli import low_confidence_pages

    def page(index: int, confidence: Confidence | None) -> PageResult:
        return PageResult(index=index, text="", raw_text="", finish_reason="stop", usage=Usage(), confidence=confidence)

    pages = [
        page(0, Confidence(mean=0.9, min=0.2, tokens=5)),
        page(1, Confidence(mean=0.5, min=0.01, tokens=5)),
        page(2, None),
    ]
    assert low_confidence_pages(pages, 0.6) == ["page 2: confidence 0.500 (lowest token 0.010)", "page 3: no text"]
    assert low_confidence_pages(pages, 0.5) == ["page 3: no text"]

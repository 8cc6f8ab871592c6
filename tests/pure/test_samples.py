"""The committed samples load as documents, and `samples/make_samples.py` regenerates what is committed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ocr_engine.documents import DocumentLimits, load_document, sniff_kind

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EXPECTED = {  # name: (kind, pages)
    "page.png": ("image", 1),
    "report.pdf": ("pdf", None),
    "multipage.pdf": ("pdf", 2),
    "scan.png": ("image", 1),
    "receipt.jpg": ("image", 1),
    "pages.tiff": ("image", 3),
}


def _make_samples():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kind_and_pages(data: bytes, name: str) -> tuple[str, int]:
    return sniff_kind(data), len(load_document(data, name=name, limits=DocumentLimits()).selected_pages)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_loads(name: str) -> None:
    kind, pages = _kind_and_pages((SAMPLES / name).read_bytes(), name)
    expected_kind, expected_pages = EXPECTED[name]
    assert kind == expected_kind
    assert pages == expected_pages if expected_pages is not None else pages >= 1


def test_samples_stay_small() -> None:
    assert sum(path.stat().st_size for path in SAMPLES.iterdir() if path.is_file()) < 1_500_000


def test_the_script_regenerates_the_committed_samples(tmp_path: Path) -> None:
    module = _make_samples()
    module.main(tmp_path)
    assert set(module.SAMPLES) == {path.name for path in tmp_path.iterdir()}
    for name in module.SAMPLES:
        made, committed = (tmp_path / name).read_bytes(), (SAMPLES / name).read_bytes()
        assert _kind_and_pages(made, name) == _kind_and_pages(committed, name), name
        assert len(module.CONTENT[name]) == _kind_and_pages(made, name)[1]
    pdf = __import__("pymupdf").open(stream=(tmp_path / "multipage.pdf").read_bytes(), filetype="pdf")
    text = "\n".join(page.get_text() for page in pdf)
    assert "Quarterly Report" in text and "North" in text and "Figure 1" in text
    assert pdf[1].get_images(), "the second page embeds the figure"

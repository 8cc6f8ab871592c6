"""The web playground in a real headless browser (Debian's Chromium, driven by Playwright): a document goes in
through the page, and the page shows what the public API answered.

A scripted checkpoint (real format and loading, weights that make the decoder write one known grounded block
per page) makes the boxes predictable; the random tiny checkpoint makes jobs long enough to cancel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocr_engine.testing import write_scripted_deepseek_ocr2
from tests.fixtures import ServerHandle, encrypted_pdf_bytes, pdf_bytes, running_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ARTIFACTS = Path(os.environ.get("OCRSERVE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".test-artifacts"))
BOX = (100, 200, 600, 400)  # the scripted block's box, in the model's 0..999 bins
SCRIPT = ["<|ref|>", "title", "<|/ref|>", "<|det|>", f"[[{', '.join(map(str, BOX))}]]", "<|/det|>", "\n# Scripted\n"]
KEY = "playground-key"
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory, server_logs: Path) -> Iterator[ServerHandle]:
    checkpoint = write_scripted_deepseek_ocr2(tmp_path_factory.mktemp("scripted"), SCRIPT)
    with running_server(checkpoint, server_logs, "ui-scripted", {}) as handle:
        yield handle


@pytest.fixture(scope="module")
def keyed_server(tiny_checkpoint: Path, server_logs: Path) -> Iterator[ServerHandle]:
    env = {"OCRSERVE_API_KEYS": KEY, "OCRSERVE_MAX_PAGES": "80", "OCRSERVE_MAX_NUM_SEQS": "2"}
    with running_server(tiny_checkpoint, server_logs, "ui-keyed", env) as handle:
        yield handle


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def test_a_pdf_is_read_page_by_page_with_its_boxes_drawn(page, scripted_server: ServerHandle) -> None:
    page.goto(f"{scripted_server.url}/ui")
    page.wait_for_selector("#model:has-text('model:')")
    page.set_input_files("#file", str(SAMPLES / "multipage.pdf"))
    page.fill("#dpi", "72")
    page.click("#start")
    page.wait_for_selector("#status:has-text('completed')")
    assert page.inner_text("#status") == "completed: 2 of 2 pages read"
    cards = page.locator("article.page.done")
    assert cards.count() == 2
    for number in (1, 2):
        card = page.locator(f"article.page[data-page='{number}']")
        assert card.locator(".rendered h1").inner_text() == "Scripted"
        assert "# Scripted" in card.locator("pre.source").inner_text()
        image = card.locator(".figure img")
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural == [595, 842]  # the A4 page at 72 dpi: the pixels the boxes are in
        box = card.locator(".figure .box")
        assert box.count() == 1 and box.get_attribute("data-label") == "title"
        shown, drawn = image.bounding_box(), box.bounding_box()
        for start, size, edge, bins in (("x", "width", drawn["x"], BOX[0]), ("y", "height", drawn["y"], BOX[1])):
            assert (edge - shown[start]) / shown[size] == pytest.approx(bins / 999, abs=0.01)
        assert drawn["width"] / shown["width"] == pytest.approx((BOX[2] - BOX[0]) / 999, abs=0.01)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#download-md")
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert markdown.count("# Scripted") == 2 and "<--- Page Split --->" in markdown
    with page.expect_download() as download:
        page.click("#download-jsonl")
    assert len(Path(download.value.path()).read_text(encoding="utf-8").splitlines()) == 2

    page.uncheck("#show-boxes")
    assert not page.locator(".box").first.is_visible()


def test_model_text_cannot_inject_markup(page, scripted_server: ServerHandle) -> None:
    """The page's Markdown renderer, run in the browser: tags from the model are text, except table tags with
    numeric spans and <center>."""
    page.goto(f"{scripted_server.url}/ui")
    hostile = '<img src=x onerror="window.hit=1"> <script>window.hit=2</script> <td onclick="x()">a</td>'
    html = page.evaluate("text => renderMarkdown(text)", hostile)
    assert "<img" not in html and "<script" not in html and "<td onclick" not in html
    assert "&lt;img" in html and "&lt;script&gt;" in html
    table = page.evaluate("text => renderMarkdown(text)", '<table><tr><td colspan="2">x</td></tr></table>')
    assert table == '<p><table><tr><td colspan="2">x</td></tr></table></p>'
    page.evaluate("html => { document.querySelector('#pages-view').innerHTML = html; }", html)
    assert page.evaluate("() => window.hit") is None


def test_the_key_field_an_api_error_and_a_cancelled_job(page, keyed_server: ServerHandle, tmp_path) -> None:
    page.goto(f"{keyed_server.url}/ui")
    page.wait_for_selector("#model:has-text('enter the API key')")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector("#model:has-text('model:')")

    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted_pdf_bytes())
    page.set_input_files("#file", str(locked))
    page.click("#start")
    page.wait_for_selector("#error:visible")
    assert page.inner_text("#error") == "PDF is password-protected; send it without a password"

    long = tmp_path / "long.pdf"
    long.write_bytes(pdf_bytes(60))
    page.set_input_files("#file", str(long))
    page.fill("#dpi", "36")
    page.click("#start")
    page.wait_for_selector("article.page.done")  # a page is read: the job runs
    page.click("#cancel")
    page.wait_for_selector("#status:has-text('cancelled')")
    read = page.locator("article.page.done").count()
    assert 1 <= read < 60 and page.inner_text("#status") == f"cancelled: {read} of 60 pages read"
    assert page.is_hidden("#error")

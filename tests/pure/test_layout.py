"""The layout format (JSON line per page, boxes in pixels) and the --annotate drawing, cropping and linking."""

from __future__ import annotations

import json

from PIL import Image

from ocr_engine.annotate import crop_images, draw_blocks, markdown_with_images
from ocr_engine.grounding import Box
from ocr_engine.layout import LayoutBlock, LayoutFormatter, layout_blocks, render_page

# What DeepSeek-OCR-2 writes for a page with the grounding Markdown prompt.
PAGE = (
    "<|ref|>title<|/ref|><|det|>[[100, 50, 899, 120]]<|/det|>\n# Annual report\n\n"
    "<|ref|>text<|/ref|><|det|>[[100, 150, 480, 400], [520, 150, 899, 400]]<|/det|>\nTwo columns of text.\n\n"
    "<|ref|>image<|/ref|><|det|>[[200, 450, 799, 850]]<|/det|>\n\n"
    "<|ref|>image_caption<|/ref|><|det|>[[200, 860, 799, 900]]<|/det|>\n<center>Figure 1</center>\n\n"
)
SIZE = (1000, 2000)  # pixels: bins map to x * 1000 / 999, y * 2000 / 999


def test_page_line_has_pixel_boxes_one_block_per_box_and_the_page_text() -> None:
    line = render_page(3, PAGE, SIZE)
    assert line.endswith("}\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "page": 3,
        "width": 1000,
        "height": 2000,
        "blocks": [
            {"label": "title", "box": [100, 100, 899, 240], "text": "# Annual report", "confidence": None},
            {"label": "text", "box": [100, 300, 480, 800], "text": "Two columns of text.", "confidence": None},
            {"label": "text", "box": [520, 300, 899, 800], "text": "Two columns of text.", "confidence": None},
            {"label": "image", "box": [200, 900, 799, 1701], "text": "", "confidence": None},
            {
                "label": "image_caption",
                "box": [200, 1721, 799, 1801],
                "text": "<center>Figure 1</center>",
                "confidence": None,
            },
        ],
        "text": "# Annual report\n\n\nTwo columns of text.\n\n\n\n\n<center>Figure 1</center>",
        "confidence": None,
    }


def test_malformed_tags_lose_boxes_not_text() -> None:
    raw = (
        "Header before any ref\n"
        "<|ref|>text<|/ref|><|det|>[[1, 2, 3], [0, 0, 1000, 5], [9, 9, 1, 1], [-1, 0, 5, 5]]<|/det|>bad boxes\n"
        "<|ref|>table<|det|>[[0, 0, 999, 999]]<|/det|><table></table>\n"
        "<|ref|>text<|/ref|><|det|>[[10, 20, 30, 40]], [[5, 6"
    )
    page = json.loads(render_page(1, raw, (999, 999)))
    assert page["blocks"] == [
        {"label": "table", "box": [0, 0, 999, 999], "text": "<table></table>", "confidence": None},
        {
            "label": "text",
            "box": [10, 20, 30, 40],
            "text": "",
            "confidence": None,
        },  # the unclosed det still gives its whole boxes
    ]
    assert page["text"] == "Header before any ref\nbad boxes\n<table></table>"


def test_free_ocr_output_has_no_blocks_but_keeps_its_text() -> None:
    page = json.loads(render_page(1, "  # Just Markdown\n\nno tags  \n", (640, 480)))
    assert page == {
        "page": 1,
        "width": 640,
        "height": 480,
        "blocks": [],
        "text": "# Just Markdown\n\nno tags",
        "confidence": None,
    }


def test_a_text_only_answer_has_no_size_and_no_blocks() -> None:
    page = json.loads(render_page(1, PAGE, None))
    assert (page["width"], page["height"], page["blocks"]) == (None, None, [])
    assert page["text"].startswith("# Annual report")


def test_formatter_streams_nothing_until_the_page_is_finished() -> None:
    formatter = LayoutFormatter(2, SIZE)
    assert not any(formatter.feed(PAGE[i : i + 7]) for i in range(0, len(PAGE), 7))
    assert formatter.finish() == render_page(2, PAGE, SIZE)


# ---------------------------------------------------------------- --annotate


def _blocks() -> list[LayoutBlock]:
    return layout_blocks(PAGE, SIZE)


def test_draw_blocks_outlines_each_box_and_keeps_the_input() -> None:
    page = Image.new("RGB", SIZE, "white")
    drawn = draw_blocks(page, _blocks())
    assert drawn.size == page.size
    assert page.getpixel((100, 100)) == (255, 255, 255)  # the input is not drawn on
    for block in _blocks():
        x1, y1, x2, y2 = block.box
        assert drawn.getpixel((x1, (y1 + y2) // 2)) != (255, 255, 255)  # left edge of the outline
        assert drawn.getpixel((x2, (y1 + y2) // 2)) != (255, 255, 255)  # right edge
        assert drawn.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (255, 255, 255)  # the inside stays
    assert drawn.getpixel((50, 50)) == (255, 255, 255)  # outside every box
    colours = {block.label: drawn.getpixel((block.box.x1, block.box.y2 - 5)) for block in _blocks()}
    assert len(set(colours.values())) == len(colours)  # one colour per label


def test_label_is_written_at_the_top_left_of_its_box() -> None:
    block = LayoutBlock(label="title", box=Box(20, 20, 380, 180), text="")
    drawn = draw_blocks(Image.new("RGB", (400, 200), "white"), [block])
    corner = drawn.crop((25, 25, 120, 60))
    assert corner.getcolors() is not None and len(corner.getcolors()) > 1  # label pixels next to the corner


def test_crop_images_cuts_the_picture_boxes_at_their_size() -> None:
    page = Image.new("RGB", SIZE, "white")
    page.paste((10, 20, 30), (200, 900, 799, 1701))
    figure = LayoutBlock(label="figure", box=Box(0, 0, 10, 5), text="")
    empty = LayoutBlock(label="image", box=Box(7, 7, 7, 7), text="")
    crops = crop_images(page, [*_blocks(), figure, empty])
    assert [crop.size for crop in crops] == [(599, 801), (10, 5), (1, 1)]
    assert crops[0].getcolors() == [(599 * 801, (10, 20, 30))]


def test_markdown_links_each_picture_box_in_crop_order() -> None:
    raw = "Lead text\n" + PAGE + "<|ref|>figure<|/ref|><|det|>[[1, 1, 5, 5], [6, 6, 9, 9]]<|/det|>\nChart"
    links = [f"doc/page-1-image-{k}.png" for k in (1, 2, 3)]
    assert len(crop_images(Image.new("RGB", SIZE), layout_blocks(raw, SIZE))) == len(links)
    assert markdown_with_images(raw, links) == (
        "Lead text\n\n# Annual report\n\nTwo columns of text.\n\n![](doc/page-1-image-1.png)\n\n"
        "<center>Figure 1</center>\n\n![](doc/page-1-image-2.png)\n\n![](doc/page-1-image-3.png)\n\nChart"
    )
    assert markdown_with_images("no grounding at all", []) == "no grounding at all"

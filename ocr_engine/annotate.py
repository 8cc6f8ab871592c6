"""`ocrserve ocr --annotate`: page images with their layout boxes drawn, and the pictures cut out of them.

The drawing and cropping are pure functions of a page image and its blocks; `write_annotations` re-rasterizes
a document's pages one at a time after OCR, so memory stays flat however long the document is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ocr_engine.documents import DocumentLimits, iter_document_pages
from ocr_engine.grounding import REF_OPEN, clean_markdown, parse_grounding
from ocr_engine.layout import LayoutBlock, layout_blocks
from ocr_engine.request import Document
from ocr_engine.results import PageResult

# Labels whose regions are pictures: they are cropped, and the Markdown links to the crops.
IMAGE_LABELS = frozenset({"image", "figure"})

# Well-separated colours, given to a page's labels in order of first appearance.
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#800000")


def draw_blocks(image: Image.Image, blocks: Sequence[LayoutBlock]) -> Image.Image:
    """A copy of `image` with each block's box outlined and its label at the box's top-left, a colour per label."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    line = max(2, min(out.size) // 400)
    font = ImageFont.load_default(size=max(12, min(out.size) // 60))
    colours: dict[str, str] = {}
    for block in blocks:
        colour = colours.setdefault(block.label, _PALETTE[len(colours) % len(_PALETTE)])
        draw.rectangle(block.box, outline=colour, width=line)
        draw.text((block.box.x1 + line + 1, block.box.y1 + line), block.label, fill=colour, font=font)
    return out


def crop_images(image: Image.Image, blocks: Sequence[LayoutBlock]) -> list[Image.Image]:
    """The picture blocks (`IMAGE_LABELS`) cut out of `image`, in block order; at least 1x1 pixel each."""
    crops = []
    for block in blocks:
        if block.label in IMAGE_LABELS:
            x1, y1, x2, y2 = block.box
            crops.append(image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))))
    return crops


def markdown_with_images(raw: str, links: Iterable[str]) -> str:
    """The page's Markdown, blocks separated by blank lines, with `![](link)` in place of each picture box.

    `links` are used in order, one per box of a picture block: the order of `crop_images`.
    """
    links = iter(links)
    parts = [clean_markdown(raw.split(REF_OPEN, 1)[0])]
    for block in parse_grounding(raw):
        if block.label in IMAGE_LABELS:
            parts.extend(f"![]({next(links)})" for _ in block.boxes)
        parts.append(block.text)
    return "\n\n".join(part for part in parts if part)


def write_annotations(
    document: Document, pages: Sequence[PageResult], dpi: int, limits: DocumentLimits, directory: Path
) -> list[str]:
    """Write `page-<n>.png` and `page-<n>-image-<k>.png` into `directory` for the OCR'd `pages` of `document`.

    Returns each page's Markdown with links to its crops, relative to the directory's parent.
    """
    directory.mkdir(parents=True, exist_ok=True)
    markdown = []
    for page, image in zip(pages, iter_document_pages(document, dpi, limits), strict=True):
        blocks = layout_blocks(page.raw_text, image.size)
        number = page.index + 1
        draw_blocks(image, blocks).save(directory / f"page-{number}.png")
        links = []
        for k, crop in enumerate(crop_images(image, blocks), start=1):
            name = f"page-{number}-image-{k}.png"
            crop.save(directory / name)
            links.append(f"{directory.name}/{name}")
        markdown.append(markdown_with_images(page.raw_text, links))
    return markdown

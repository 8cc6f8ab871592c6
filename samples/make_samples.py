"""Regenerate the extra sample documents, deterministically, with known content: `python samples/make_samples.py [DIR]`.

`page.png` and `report.pdf` are kept as committed (the README's quick start uses them); this writes:
- `multipage.pdf`: 2 pages with headings, a ruled table, body text and an embedded figure (a drawn bar chart);
- `scan.png`: a page that looks scanned: greyish paper, a slight rotation, noise;
- `receipt.jpg`: a narrow receipt photographed at a slight angle, a little blurred;
- `pages.tiff`: a 3-page TIFF (one form per page).
The texts are in `CONTENT`, so a test or a person can compare OCR output with what is on the page.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pymupdf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).parent

TABLE = [("Region", "Q1", "Q2", "Q3"), ("North", "120", "135", "150"), ("South", "98", "104", "117")]
RECEIPT = [
    "CORNER BAKERY",
    "12 Mill Street",
    "2026-11-23 08:41",
    "",
    "Sourdough loaf     4.20",
    "Croissant x2       3.60",
    "Flat white         3.10",
    "",
    "TOTAL             10.90",
    "CARD              10.90",
    "Thank you!",
]
CONTENT = {
    "multipage.pdf": [
        ["Quarterly Report", "1. Summary", "Sales grew in every region this quarter.", *[" ".join(r) for r in TABLE]],
        ["2. Outlook", "Figure 1: sales by region", "We expect steady growth next year."],
    ],
    "scan.png": [["MEMO", "To: All staff", "Subject: Office move", "The office moves to Building C on 1 December."]],
    "receipt.jpg": [[line for line in RECEIPT if line]],
    "pages.tiff": [[f"Form {n} of 3", f"Reference: TIF-{n:03d}", "Signature: ________"] for n in (1, 2, 3)],
}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _chart_png() -> bytes:
    """A small bar chart for the PDF's figure."""
    image = Image.new("RGB", (240, 140), "white")
    draw = ImageDraw.Draw(image)
    draw.line((20, 120, 230, 120), fill="black", width=2)
    draw.line((20, 10, 20, 120), fill="black", width=2)
    for index, (value, colour) in enumerate(((150, "#4472c4"), (117, "#ed7d31"))):
        x = 50 + index * 90
        draw.rectangle((x, 120 - value * 0.7, x + 50, 120), fill=colour)
        draw.text((x + 8, 124), TABLE[index + 1][0], fill="black", font=_font(12))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def make_pdf() -> bytes:
    document = pymupdf.open()
    first, second = CONTENT["multipage.pdf"]
    page = document.new_page(width=595, height=842)  # A4 in points
    page.insert_text((72, 90), first[0], fontsize=24, fontname="helv")
    page.insert_text((72, 140), first[1], fontsize=16, fontname="helv")
    page.insert_text((72, 170), first[2], fontsize=11, fontname="helv")
    top, row_height, widths = 200, 24, (140, 80, 80, 80)
    for row_index, row in enumerate(TABLE):
        y, x = top + row_index * row_height, 72
        for cell, width in zip(row, widths, strict=True):
            page.draw_rect(pymupdf.Rect(x, y, x + width, y + row_height), color=(0, 0, 0), width=0.8)
            page.insert_text((x + 6, y + 16), cell, fontsize=11, fontname="helv")
            x += width
    page = document.new_page(width=595, height=842)
    page.insert_text((72, 90), second[0], fontsize=16, fontname="helv")
    page.insert_image(pymupdf.Rect(72, 110, 372, 285), stream=_chart_png())
    page.insert_text((72, 305), second[1], fontsize=10, fontname="helv")
    page.insert_text((72, 340), second[2], fontsize=11, fontname="helv")
    document.set_metadata({"title": "Quarterly Report", "creationDate": "", "modDate": "", "producer": "ocrserve"})
    data = document.tobytes(garbage=4, deflate=True, no_new_id=True)
    document.close()
    return data


def make_scan() -> bytes:
    rng = random.Random(11)
    page = Image.new("L", (800, 560), 255)
    draw = ImageDraw.Draw(page)
    lines = CONTENT["scan.png"][0]
    draw.text((60, 50), lines[0], fill=20, font=_font(40))
    for index, line in enumerate(lines[1:]):
        draw.text((60, 140 + 50 * index), line, fill=30, font=_font(26))
    page = page.rotate(2.5, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    pixels = page.load()
    for y in range(page.height):
        for x in range(page.width):
            value = pixels[x, y] * 0.86 + 12 + rng.gauss(0, 9)  # greyish paper, darker ink, sensor noise
            pixels[x, y] = max(0, min(255, int(value)))
    out = io.BytesIO()
    page.quantize(32).save(out, "PNG", optimize=True)
    return out.getvalue()


def make_receipt() -> bytes:
    paper = Image.new("RGB", (300, 560), (250, 248, 240))
    draw = ImageDraw.Draw(paper)
    for index, line in enumerate(RECEIPT):
        draw.text((22, 24 + 46 * index), line, fill=(25, 25, 25), font=_font(20))
    # photographed at a slight angle on a dark table: a perspective warp, then a little blur
    table = Image.new("RGB", (360, 620), (70, 60, 50))
    width, height = paper.size
    coefficients = _perspective(
        (0, 0, width, 0, width, height, 0, height), (14, 0, width - 6, 10, width, height, 0, height - 8)
    )
    warped = paper.transform(
        paper.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC, fillcolor=(70, 60, 50)
    )
    table.paste(warped, (30, 30))
    out = io.BytesIO()
    table.filter(ImageFilter.GaussianBlur(0.8)).save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def _perspective(target: tuple[float, ...], source: tuple[float, ...]) -> list[float]:
    """Coefficients of PIL's PERSPECTIVE transform mapping the `target` quad onto the `source` quad."""
    import numpy as np

    rows = []
    for (x, y), (u, v) in zip(
        zip(target[::2], target[1::2], strict=True), zip(source[::2], source[1::2], strict=True), strict=True
    ):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, dtype=float), np.array(source, dtype=float))
    return [float(c) for c in solution]


def make_tiff() -> bytes:
    pages = []
    for lines in CONTENT["pages.tiff"]:
        page = Image.new("L", (500, 300), 255)
        draw = ImageDraw.Draw(page)
        for index, line in enumerate(lines):
            draw.text((40, 40 + 60 * index), line, fill=0, font=_font(28))
        draw.rectangle((30, 30, 470, 270), outline=0, width=2)
        pages.append(page.convert("1"))
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], compression="group4")
    return out.getvalue()


SAMPLES = {"multipage.pdf": make_pdf, "scan.png": make_scan, "receipt.jpg": make_receipt, "pages.tiff": make_tiff}


def main(directory: Path = HERE) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in SAMPLES.items():
        data = make()
        (directory / name).write_bytes(data)
        print(f"{directory / name}: {len(data):,} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

"""Grounding parsing, box scaling and the streaming Markdown cleaner."""

from __future__ import annotations

import itertools
import random

import msgspec
import pytest

from ocr_engine.grounding import (
    Box,
    GroundedBlock,
    MarkdownStreamCleaner,
    clean_markdown,
    parse_grounding,
    to_pixels,
)

PAGE = (
    "<|ref|>title<|/ref|><|det|>[[330, 198, 558, 230]]<|/det|>\n# R&D QUALITY\n\n"
    "<|ref|>text<|/ref|><|det|>[[12, 40, 980, 88], [12, 90, 500, 120]]<|/det|>\nSome text...\n\n"
)


def test_parse_page() -> None:
    assert parse_grounding(PAGE) == [
        GroundedBlock(label="title", boxes=[Box(330, 198, 558, 230)], text="# R&D QUALITY"),
        GroundedBlock(label="text", boxes=[Box(12, 40, 980, 88), Box(12, 90, 500, 120)], text="Some text..."),
    ]


def test_blocks_encode_as_json() -> None:
    block = parse_grounding(PAGE)[0]
    assert msgspec.json.encode(block) == b'{"label":"title","boxes":[[330,198,558,230]],"text":"# R&D QUALITY"}'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain text, no grounding", []),
        ("lead\n<|ref|>text<|/ref|>\nno det", [GroundedBlock("text", [], "no det")]),
        (
            "<|ref|>table<|/ref|><|det|>[[1, 2, 3], [4, 5, 6, 7], [a, 1, 2, 3], [9, 9, 1, 1], "
            "[0, 0, 1000, 5]]<|/det|>\n<table></table>",
            [GroundedBlock("table", [Box(4, 5, 6, 7)], "<table></table>")],
        ),
        ("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]], [[5, 6", [GroundedBlock("text", [Box(1, 2, 3, 4)], "")]),
        ("<|ref|>text<|det|>[[1, 2, 3, 4]]<|/det|>body", [GroundedBlock("text", [Box(1, 2, 3, 4)], "body")]),
        ("<|ref|>tit", [GroundedBlock("tit", [], "")]),
        ("<|ref|><|/ref|><|det|>[[-1, 2, 3, 4], [1.5, 2, 3, 4]]<|/det|>x", [GroundedBlock("", [], "x")]),
    ],
)
def test_parse_tolerates_malformed_output(raw: str, expected: list[GroundedBlock]) -> None:
    assert parse_grounding(raw) == expected


def test_to_pixels_scales_and_clamps() -> None:
    assert to_pixels((0, 0, 999, 999), 1000, 500) == Box(0, 0, 1000, 500)
    assert to_pixels(Box(330, 198, 558, 230), 1224, 1584) == Box(404, 313, 683, 364)
    assert to_pixels((-5, 0, 2000, 1200), 100, 50) == Box(0, 0, 100, 50)


def test_clean_markdown_drops_tags_and_strips_page() -> None:
    assert clean_markdown(PAGE) == "# R&D QUALITY\n\n\nSome text..."
    assert clean_markdown("<|grounding|>a <| b <|ref|") == "a <| b <|ref|"
    assert clean_markdown("keep<|/det|> this<|ref|>unclosed span") == "keep this"
    assert clean_markdown("  \n") == ""


def test_stream_holds_only_partial_tags_and_trailing_whitespace() -> None:
    cleaner = MarkdownStreamCleaner()
    assert cleaner.feed("\nHello <|") == "Hello"
    assert cleaner.feed("ref|>lab") == ""
    assert cleaner.feed("el<|/ref|><|det|>[[1, 2") == ""
    assert cleaner.feed(", 3, 4]]<|/det|>\nworld <") == " \nworld"
    assert cleaner.feed("b>") == " <b>"
    assert cleaner.feed("\n\n") == ""
    assert cleaner.finish() == ""


SAMPLES = [
    PAGE,
    "<|grounding|>x<|ref|>a<|/ref|>y<|det|>[[1,2,3,4]]<|/det|>z <|  <|r <|/ref",
    "a <|ref|>unclosed\n\nspan <|det|>and more",
    "<<||ref|>|>text<|/det|>\n\n <|grounding|> tail \n",
    "  \n Straße 東京 café <|ref|>image<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\n\n![](x)\n",
]


def _stream(deltas: list[str]) -> str:
    cleaner = MarkdownStreamCleaner()
    return "".join(cleaner.feed(d) for d in deltas) + cleaner.finish()


@pytest.mark.parametrize("raw", SAMPLES)
def test_stream_equals_whole_for_every_split(raw: str) -> None:
    expected = clean_markdown(raw)
    assert _stream(list(raw)) == expected
    for i, j in itertools.combinations(range(len(raw) + 1), 2):
        assert _stream([raw[:i], raw[i:j], raw[j:]]) == expected, (i, j)
    rng = random.Random(0)
    for _ in range(300):
        cuts = sorted(rng.sample(range(len(raw) + 1), rng.randint(1, min(12, len(raw)))))
        deltas = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]
        assert _stream(deltas) == expected, cuts


def test_stream_equals_whole_for_random_tag_soup() -> None:
    rng = random.Random(1)
    alphabet = [
        "<|ref|>",
        "<|/ref|>",
        "<|det|>",
        "<|/det|>",
        "<|grounding|>",
        "<|",
        "|>",
        "<",
        "r",
        " ",
        "\n",
        "é",
    ]
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        deltas, rest = [], raw
        while rest:
            k = rng.randint(0, 6)
            deltas.append(rest[:k])
            rest = rest[k:]
        assert _stream(deltas) == clean_markdown(raw), (raw, deltas)

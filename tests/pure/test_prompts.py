"""Instruction presets and prompt rendering."""

from __future__ import annotations

import pytest

from ocr_engine.errors import InvalidInput
from ocr_engine.prompts import DEFAULT_PRESET, PRESETS, image_prompt, resolve_instruction, text_prompt


def test_presets() -> None:
    assert dict(PRESETS) == {
        "markdown": "<|grounding|>Convert the document to markdown.",
        "free_ocr": "Free OCR.",
        "figure": "Parse the figure.",
        "describe": "Describe this image in detail.",
        "locate": "Locate <|ref|>{target}<|/ref|> in the image.",
        "ocr": "<|grounding|>OCR this image.",
    }
    assert DEFAULT_PRESET == "markdown"


@pytest.mark.parametrize(
    ("user_text", "preset", "expected"),
    [
        (None, None, "<|grounding|>Convert the document to markdown."),
        ("  ", None, "<|grounding|>Convert the document to markdown."),
        (" What is the total? ", None, "What is the total?"),
        ("ignored", "free_ocr", "Free OCR."),
        (None, "ocr", "<|grounding|>OCR this image."),
        (" the {signature} ", "locate", "Locate <|ref|>the {signature}<|/ref|> in the image."),
    ],
)
def test_resolve_instruction(user_text: str | None, preset: str | None, expected: str) -> None:
    assert resolve_instruction(user_text, preset) == expected


@pytest.mark.parametrize("user_text", [None, "", " \n"])
def test_locate_needs_a_target(user_text: str | None) -> None:
    with pytest.raises(InvalidInput, match="needs a target") as info:
        resolve_instruction(user_text, "locate")
    assert info.value.param == "ocr.preset"


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_instruction("x", "latex")
    assert info.value.param == "ocr.preset"
    assert info.value.message == (
        "Unknown preset 'latex'; valid presets: describe, figure, free_ocr, locate, markdown, ocr."
    )


def test_image_prompt() -> None:
    assert image_prompt("Free OCR.") == "<image>\nFree OCR."


def test_text_prompt_renders_turns_plainly() -> None:
    turns = [
        ("system", "Answer briefly."),
        ("user", "Name a colour."),
        ("assistant", "Blue."),
        ("user", " And another? "),
        ("user", "  "),
    ]
    assert text_prompt(turns) == "Answer briefly.\nName a colour.\nBlue.\nAnd another?"


@pytest.mark.parametrize("turns", [[], [("user", " ")], [("tool", "x")]])
def test_text_prompt_rejects_empty_or_unknown(turns: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidInput) as info:
        text_prompt(turns)
    assert info.value.param == "messages"

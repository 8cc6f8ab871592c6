"""Instruction presets and prompt text. DeepSeek-OCR uses no chat template: a prompt is plain text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ocr_engine.errors import InvalidInput

IMAGE_PLACEHOLDER = "<image>"
_TARGET = "{target}"
_PRESET_PARAM = "ocr.preset"

PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "markdown": "<|grounding|>Convert the document to markdown.",
        "free_ocr": "Free OCR.",
        "figure": "Parse the figure.",
        "describe": "Describe this image in detail.",
        "locate": f"Locate <|ref|>{_TARGET}<|/ref|> in the image.",
        "ocr": "<|grounding|>OCR this image.",
    }
)
DEFAULT_PRESET = "markdown"

_ROLES = frozenset({"system", "developer", "user", "assistant"})


def resolve_instruction(user_text: str | None, preset: str | None) -> str:
    """The instruction for one request.

    A preset wins over the user's text, except that `locate` takes the user's text as its target. Without a
    preset the user's text is the instruction; with neither, the Markdown preset is used.
    """
    text = (user_text or "").strip()
    if preset is None:
        return text or PRESETS[DEFAULT_PRESET]
    template = PRESETS.get(preset)
    if template is None:
        valid = ", ".join(sorted(PRESETS))
        raise InvalidInput(f"Unknown preset {preset!r}; valid presets: {valid}.", param=_PRESET_PARAM)
    if _TARGET not in template:
        return template
    if not text:
        raise InvalidInput(
            f"The {preset!r} preset needs a target: send what to locate as the message text.",
            param=_PRESET_PARAM,
        )
    return template.replace(_TARGET, text)


def image_prompt(instruction: str) -> str:
    """The prompt for one page: a single image placeholder (the engine expands it into image tokens)."""
    return f"{IMAGE_PLACEHOLDER}\n{instruction}"


def text_prompt(turns: Sequence[tuple[str, str]]) -> str:
    """The prompt for a text-only conversation of (role, text) turns.

    The model has no chat template, so turns are rendered as plain text in order, one per line, without role
    names: system and user text as instructions, earlier assistant answers as the text that followed them.
    The prompt ends right after the last turn, as `image_prompt` does, so the decoder writes the answer next.
    """
    lines = []
    for role, text in turns:
        if role not in _ROLES:
            raise InvalidInput(f"Unsupported message role {role!r}.", param="messages")
        if text.strip():
            lines.append(text.strip())
    if not lines:
        raise InvalidInput("The conversation has no text to answer.", param="messages")
    return "\n".join(lines)

"""Incremental detokenizing for streaming: text per token, without re-decoding the whole page each step."""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

from transformers import PreTrainedTokenizerBase

_INCOMPLETE = "\ufffd"


class IncrementalDetokenizer:
    """Turns generated token ids into text deltas whose concatenation is the decode of all ids.

    Uses the prefix/read offset technique: each step decodes only the ids since the last emitted boundary plus
    the new ones, and diffs against the decode of the former, so context-dependent decoders (leading spaces,
    byte-level pieces) come out right at O(1) amortised cost. Text ending in U+FFFD (a UTF-8 character split
    over byte-level tokens) is held back until the character completes. Special tokens are decoded (grounding
    tags such as `<|ref|>` must reach the output) except `skip_token_ids` (EOS, BOS, pad), which are dropped.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, skip_token_ids: Collection[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._skip = frozenset(skip_token_ids)
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the context decoded again for diffing
        self._read_offset = 0  # ids before this have been emitted as text
        self._text = ""

    @property
    def text(self) -> str:
        """All text returned by `push` and `flush` so far."""
        return self._text

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text it completes ("" while a character is still incomplete)."""
        if token_id in self._skip:
            return ""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Release whatever is held back, even an incomplete character (as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) <= len(prefix) or (full.endswith(_INCOMPLETE) and not final):
            return ""
        delta = full[len(prefix) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        self._text += delta
        return delta

    def _decode(self, ids: list[int]) -> str:
        text = self._tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return cast(str, text)  # one sequence of ids decodes to one str (the list[str] is for a batch)

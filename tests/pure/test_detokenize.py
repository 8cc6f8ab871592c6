"""Incremental detokenizing against a real byte-level BPE tokenizer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ocr_engine.detokenize import IncrementalDetokenizer

SPECIALS = ["<eos>", "<pad>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<td>", "</td>"]
CORPUS = [
    "Straße 東京 café naïve",
    "The quick brown fox jumps over the lazy dog.",
    "Convert the document to markdown.",
]
TEXTS = [
    "Straße 東京 café, and 🙂 emoji — über 大阪!",
    "<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# Ünïcødé <td>x</td>",
    "  leading spaces\n\n\ttabs 東京東京",
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=SPECIALS[2:],
        clean_up_tokenization_spaces=False,
    )


def _ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("text", TEXTS)
def test_pushing_ids_gives_the_full_decode(tokenizer: PreTrainedTokenizerFast, text: str) -> None:
    ids = _ids(tokenizer, text)
    # Non-ASCII texts really do split characters over tokens.
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids) == (not text.isascii())
    detok = IncrementalDetokenizer(tokenizer)
    deltas = [detok.push(i) for i in ids]
    assert all("\ufffd" not in d for d in deltas)
    assert detok.flush() == ""
    assert "".join(deltas) == detok.text == tokenizer.decode(ids, skip_special_tokens=False) == text


def test_skipped_ids_produce_no_text(tokenizer: PreTrainedTokenizerFast) -> None:
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = _ids(tokenizer, "café 東京")
    detok = IncrementalDetokenizer(tokenizer, skip_token_ids={eos, pad})
    out = [detok.push(i) for i in [pad, *ids[:3], eos, *ids[3:], eos, pad]]
    assert "".join(out) + detok.flush() == "café 東京"
    assert "".join(out[-2:]) == ""


def test_incomplete_character_is_held_then_flushed(tokenizer: PreTrainedTokenizerFast) -> None:
    byte_ids = tokenizer.convert_tokens_to_ids(["æ", "Ŀ", "±"])  # the three UTF-8 bytes of 東 (e6 9d b1)
    detok = IncrementalDetokenizer(tokenizer)
    assert [detok.push(i) for i in byte_ids] == ["", "", "東"]
    assert detok.push(byte_ids[0]) == ""
    assert detok.flush() == "\ufffd"
    assert detok.text == "東\ufffd"


def test_special_tokens_are_decoded(tokenizer: PreTrainedTokenizerFast) -> None:
    detok = IncrementalDetokenizer(tokenizer, skip_token_ids={tokenizer.eos_token_id})
    ref = tokenizer.convert_tokens_to_ids("<|ref|>")
    assert detok.push(ref) == "<|ref|>"
    assert detok.push(tokenizer.eos_token_id) == ""


def test_each_step_decodes_only_a_short_window(
    tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    lengths: list[int] = []
    decode = tokenizer.decode

    def recording_decode(ids: list[int], **kwargs: bool) -> str:
        lengths.append(len(ids))
        return decode(ids, **kwargs)

    monkeypatch.setattr(tokenizer, "decode", recording_decode)
    ids = _ids(tokenizer, " ".join(TEXTS) * 20)
    detok = IncrementalDetokenizer(tokenizer)
    for i in ids:
        detok.push(i)
    assert len(ids) > 500
    assert max(lengths) <= 6

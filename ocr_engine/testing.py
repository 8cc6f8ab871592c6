"""Tiny random-weight checkpoints in the real on-disk format, for tests and smoke runs.

They keep the real geometry (1024 px global view, 768 px tiles, 16 px patches, 144/256 vision queries, the
real special tokens) and shrink only the widths, so they load and generate through exactly the code path of
the published weights, just fast enough for a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    DeepseekOcr2Config,
    DeepseekOcr2ForConditionalGeneration,
    DeepseekOcr2ImageProcessorPil,
    DeepseekOcr2Processor,
    PreTrainedTokenizerFast,
)
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
# The special tokens of the published DeepSeek-OCR tokenizers, in their order there.
OCR_SPECIAL_TOKENS = (
    "<image>",
    "<|ref|>",
    "<|/ref|>",
    "<|det|>",
    "<|/det|>",
    "<|grounding|>",
    "<td>",
    "</td>",
    "<tr>",
    "</tr>",
    "<|User|>",
    "<|Assistant|>",
)
_CORPUS = (
    "# Title\n\nConvert the document to markdown. Free OCR. Parse the figure. Describe this image in detail.",
    "| a | b |\n|---|---|\n| 1 | 2 |\nThe quick brown fox jumps over the lazy dog. 0123456789",
    "Straße café naïve 東京 数学 ∑ α β γ — “quotes” ‘single’ • bullet € $ % & @ ! ? ; : ( ) [ ] { }",
    "Invoice total: 1,234.56 EUR. Date 2026-11-23. Page 1 of 3. Locate the table in the image.",
)


# The tiny DeepSeek-V2 MoE decoder both families share: 2 layers (dense, then 4 routed + 1 shared experts, top 2).
TINY_DECODER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
}


def build_tokenizer(vocab_size: int = 640) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with BOS 0, EOS 1, pad 2 and the OCR special tokens, like the real one."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(OCR_SPECIAL_TOKENS),
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD, add_bos_token=True
    )
    fast.add_special_tokens({"additional_special_tokens": list(OCR_SPECIAL_TOKENS)})
    return fast


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """One token's id (transformers types the lookup for a list of tokens too)."""
    return cast(int, tokenizer.convert_tokens_to_ids(token))


def tiny_ocr2_config(
    vocab_size: int, image_token_id: int, *, max_position_embeddings: int = 4096
) -> DeepseekOcr2Config:
    """Real DeepSeek-OCR-2 geometry with tiny widths: SAM 32 wide, 2 layers; encoder 32; decoder 64, 2 layers, MoE."""
    return DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 32,
                "output_channels": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "global_attn_indexes": [1],
                "downsample_channels": [32, 32],
            },
            "encoder_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "vocab_size": 16,
            },
        },
        text_config={
            "vocab_size": vocab_size,
            **TINY_DECODER,
            "mlp_layer_types": ["dense", "sparse"],
            "max_position_embeddings": max_position_embeddings,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 2,
        },
        image_token_id=image_token_id,
    )


def write_tiny_deepseek_ocr2(path: str | Path, *, seed: int = 0, max_position_embeddings: int = 4096) -> Path:
    """Write config, safetensors weights, tokenizer and processor configs of a random tiny DeepSeek-OCR-2."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_ocr2_config(
        len(tokenizer), _token_id(tokenizer, "<image>"), max_position_embeddings=max_position_embeddings
    )
    torch.manual_seed(seed)
    return _save_ocr2(DeepseekOcr2ForConditionalGeneration(config).eval(), tokenizer, path)


def write_model_files(path: str | Path) -> Path:
    """What the API reads of a tiny DeepSeek-OCR-2 checkpoint (config, tokenizer, processor), without weights: for
    tests of the HTTP layer, which never loads a model."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tiny_ocr2_config(len(tokenizer), _token_id(tokenizer, "<image>")).save_pretrained(path)
    _save_processor(tokenizer, path)
    return path


def _save_ocr2(model: DeepseekOcr2ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    model.generation_config.bos_token_id = 0
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 2
    model.save_pretrained(path)
    _save_processor(tokenizer, path)
    return path


def _save_processor(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
    processor.save_pretrained(path)


def write_scripted_deepseek_ocr2(path: str | Path, pieces: Sequence[str]) -> Path:
    """A tiny DeepSeek-OCR-2 whose every answer is `pieces` joined, then its end of sequence: weights set so the
    decoder is a lookup of the next piece (for tests that need known output, grounding boxes say).

    Each piece is one token (pieces that are not already are added to the tokenizer), all distinct. The decoder's
    attention and MLP outputs are zero, so its last hidden state is the current token's embedding: piece i's
    embedding is the basis vector i + 1, every other token's the basis vector 0, and the LM head maps basis
    vector 0 to the first piece, vector i + 1 to piece i + 1 and the last piece's to EOS. Loaded and run through
    the same code as any checkpoint."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.add_tokens([piece for piece in pieces if piece not in tokenizer.get_vocab()])
    chain = [_token_id(tokenizer, piece) for piece in pieces]
    if len(set(chain)) != len(chain) or len(chain) + 1 > TINY_DECODER["hidden_size"]:
        raise ValueError("the pieces must be distinct, and fewer than the decoder is wide")
    config = tiny_ocr2_config(len(tokenizer), _token_id(tokenizer, "<image>"))
    model = DeepseekOcr2ForConditionalGeneration(config).eval()
    text = model.model.language_model
    eos = cast(DeepseekOcr2TextConfig, config.text_config).eos_token_id  # DeepseekOcr2Config makes it one
    with torch.no_grad():
        for name, parameter in text.named_parameters():
            if "o_proj" in name or "down_proj" in name:
                parameter.zero_()
        embed, head = text.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        embed[:, 0] = 1.0
        head.zero_()
        head[chain[0], 0] = 10.0
        for index, token in enumerate(chain):
            embed[token] = 0.0
            embed[token, index + 1] = 1.0
            head[chain[index + 1] if index + 1 < len(chain) else eos, index + 1] = 10.0
    return _save_ocr2(model, tokenizer, path)


def tiny_ocr1_config(vocab_size: int, *, max_position_embeddings: int = 4096) -> dict:
    """A DeepSeek-OCR v1 config.json in the original format: real geometry (SAM 16 px patches over 1024 px, CLIP
    14/224 positions), tiny widths (SAM 32, CLIP 64, decoder 64 with 2 layers: dense then MoE)."""
    language = {
        "vocab_size": vocab_size,
        **TINY_DECODER,
        "first_k_dense_replace": 1,
        "max_position_embeddings": max_position_embeddings,
        "topk_method": "greedy",
        "use_mla": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "architectures": ["DeepseekV2ForCausalLM"],
    }
    return {
        "_name_or_path": "deepseek-ai/DeepSeek-OCR",
        "architectures": ["DeepseekOCRForCausalLM"],
        "model_type": "deepseek_vl_v2",
        "language_config": language,
        "projector_config": {
            "input_dim": 128,
            "model_type": "mlp_projector",
            "n_embed": 64,
            "projector_type": "linear",
        },
        "vision_config": {
            "image_size": 1024,
            "model_name": "deeplip_b_l",
            "model_type": "vision",
            "width": {
                "clip-l-14-224": {"width": 64, "layers": 1, "heads": 2, "image_size": 224, "patch_size": 14},
                "sam_vit_b": {
                    "width": 32,
                    "layers": 2,
                    "heads": 2,
                    "global_attn_indexes": [1],
                    "downsample_channels": [32, 64],
                },
            },
        },
        **{k: v for k, v in language.items() if k != "architectures"},
        "torch_dtype": "float32",
    }


def write_tiny_deepseek_ocr(path: str | Path, *, seed: int = 0) -> Path:
    """Write a random tiny DeepSeek-OCR v1 as published: original config, key names, safetensors, tokenizer."""
    import json

    from safetensors.torch import save_file

    from ocr_engine.models.deepseek_ocr_model import DeepseekOcrForCausalLM, DeepseekOcrSpec
    from ocr_engine.models.deepseek_ocr_weights import to_original

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_ocr1_config(len(tokenizer))
    torch.manual_seed(seed)
    model = DeepseekOcrForCausalLM(DeepseekOcrSpec.from_original(config)).eval()
    state = {key: tensor.contiguous() for key, tensor in to_original(model.state_dict()).items()}
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(path)
    return path


CHECKPOINT_WRITERS = {"deepseek-ocr-2": write_tiny_deepseek_ocr2, "deepseek-ocr": write_tiny_deepseek_ocr}

"""DeepSeek-OCR v1: key mapping of the published checkpoint, parity with the original implementation on the golden
fixture (tests/data/golden_v1: reduced-size weights in the original format, the original's views and logits), token
layout per mode, and generation through the engine and the pipeline with a tiny checkpoint from our writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ocr_engine.documents import DocumentLimits, load_document
from ocr_engine.engine import OcrEngine
from ocr_engine.image_tokens import ocr1_grid, ocr1_image_tokens
from ocr_engine.models.deepseek_ocr_model import DeepseekOcrForCausalLM, DeepseekOcrSpec
from ocr_engine.models.deepseek_ocr_views import NORMALISATION, preprocess
from ocr_engine.models.deepseek_ocr_weights import from_original, to_original
from ocr_engine.models.loading import load_adapter
from ocr_engine.modes import FAMILY_MODES, OCR1
from ocr_engine.pipeline import run_ocr
from ocr_engine.pixels import to_pixels
from ocr_engine.request import OcrRequest, SamplingParams
from ocr_engine.testing import BOS, EOS, OCR_SPECIAL_TOKENS, PAD, write_tiny_deepseek_ocr
from tests.fixtures import png_bytes
from tests.model.rows import generate

DATA = Path(__file__).parents[1] / "data"
GOLDEN = DATA / "golden_v1"
CASES = json.loads((GOLDEN / "cases.json").read_text())
CPU = torch.device("cpu")


def golden_tokenizer(image_token_id: int) -> PreTrainedTokenizerFast:
    """The fixture ships no tokenizer; this one has BOS 0, EOS 1, pad 2 and `<image>` at the fixture's id."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {BOS: 0, EOS: 1, PAD: 2} | {char: 3 + i for i, char in enumerate(sorted(alphabet))}
    vocab |= {f"<unused{i}>": i for i in range(len(vocab), image_token_id)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.add_special_tokens({"additional_special_tokens": list(OCR_SPECIAL_TOKENS)})
    return fast


@pytest.fixture(scope="module")
def golden_adapter(tmp_path_factory: pytest.TempPathFactory):
    """The golden checkpoint through load_adapter, the code path of a real one (plus a tokenizer beside it)."""
    directory = tmp_path_factory.mktemp("golden-v1")
    for name in ("config.json", "model.safetensors"):
        (directory / name).symlink_to(GOLDEN / name)
    golden_tokenizer(CASES["image_token_id"]).save_pretrained(directory)
    return load_adapter(str(directory), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN / "expected.safetensors")


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: case["key"])
def test_golden_parity_with_the_original(golden_adapter, expected, case, record_property):
    key = case["key"]
    page = Image.open(GOLDEN / case["page"])
    prepared = golden_adapter.prepare("<image>", page, case["mode"])
    n_image = case["n_image_tokens"]
    assert golden_adapter.image_token_id == CASES["image_token_id"]
    assert prepared.input_ids == [CASES["bos_token_id"]] + [CASES["image_token_id"]] * n_image
    assert list(prepared.vision["grid"]) == case["tiles_w_h"]

    # The fixture's views were pooled in float32, which alone puts them up to 1.4e-5 off the exact means. A resize
    # or pad that is off moves many pixels of a 32x32 block (one level is 7.7e-6 of its mean): 3e-5 catches it.
    pooled = F.avg_pool2d(to_pixels(prepared.vision["global"], NORMALISATION, CPU, torch.float32), 32)[0]
    torch.testing.assert_close(pooled, expected[f"{key}.global_view_pool32"], atol=3e-5, rtol=0)
    tiles = prepared.vision["tiles"]
    if f"{key}.crops_pool32" in expected:
        torch.testing.assert_close(
            F.avg_pool2d(to_pixels(tiles, NORMALISATION, CPU, torch.float32), 32),
            expected[f"{key}.crops_pool32"],
            atol=3e-5,
            rtol=0,
        )
    else:
        assert tiles is None

    input_ids = [CASES["bos_token_id"], *case["text_before"], *[CASES["image_token_id"]] * n_image, *case["text_after"]]
    assert len(input_ids) == case["input_ids_len"]
    with torch.inference_mode():
        decoder = golden_adapter.decoder  # as the engine runs it: embeddings in, hidden states out, then lm_head
        embeds = decoder.embed(torch.tensor([input_ids]), [golden_adapter.page_features(prepared.vision)])
        logits = golden_adapter.lm_head(decoder(inputs_embeds=embeds).last_hidden_state)[0, -4:]
    diff = (logits - expected[f"{key}.logits_last4"]).abs().max().item()
    record_property("max_abs_logit_diff", diff)
    print(f"{key}: max |Δlogit| = {diff:.3e}")
    assert diff < CASES["tolerance_logits_max_abs"]
    assert logits.argmax(-1).tolist() == case["argmax_last4"]


def test_every_published_key_maps_to_a_parameter_with_its_full_size_shape():
    """Build the full-size model on the meta device (no memory) and compare with the published weight map."""
    published = set(json.loads((DATA / "deepseek_ocr_v1.model.safetensors.index.json").read_text())["weight_map"])
    spec = DeepseekOcrSpec.from_original(json.loads((DATA / "deepseek_ocr_v1_full_config.json").read_text()))
    with torch.device("meta"):
        model = DeepseekOcrForCausalLM(spec)
    ours = model.state_dict()
    original = to_original(ours)
    assert set(original) == published
    assert len(published) == 2711
    shapes = {key: tuple(tensor.shape) for key, tensor in original.items()}
    assert shapes["model.embed_tokens.weight"] == (129280, 1280)
    assert shapes["model.projector.layers.weight"] == (1280, 2048)
    assert shapes["model.sam_model.pos_embed"] == (1, 64, 64, 768)
    assert shapes["model.sam_model.blocks.2.attn.rel_pos_h"] == (127, 64)
    assert shapes["model.sam_model.blocks.0.attn.rel_pos_h"] == (27, 64)
    assert shapes["model.sam_model.net_3.weight"] == (1024, 512, 3, 3)
    assert shapes["model.vision_model.embeddings.position_embedding.weight"] == (257, 1024)
    assert shapes["model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight"] == (3072, 1024)
    assert shapes["model.layers.11.mlp.experts.63.gate_proj.weight"] == (896, 1280)
    assert shapes["model.layers.1.mlp.shared_experts.up_proj.weight"] == (1792, 1280)
    assert shapes["model.layers.0.mlp.gate_proj.weight"] == (6848, 1280)
    assert "model.layers.0.mlp.experts.0.up_proj.weight" not in published  # layer 0 is dense
    back = from_original(original)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in ours.items()}


@pytest.mark.parametrize(
    ("mode", "size", "grid", "count"),
    [
        ("tiny", (1200, 800), (1, 1), 73),
        ("small", (300, 900), (1, 1), 111),
        ("base", (1200, 800), (1, 1), 273),
        ("large", (800, 1200), (1, 1), 421),
        ("gundam", (640, 600), (1, 1), 273),  # no tiles when both sides fit one tile
        ("gundam", (1920, 1080), (4, 2), 273 + 41 * 20),  # 2x1 and 4x2 tie on aspect; the page is big enough
        ("gundam", (1200, 800), (3, 2), 893),
        ("gundam", (800, 2400), (1, 3), 603),
        ("gundam", (700, 700), (2, 2), 273 + 21 * 20),  # 2x2 and 3x3 tie; a small page keeps fewer tiles
        ("gundam", (3000, 3000), (3, 3), 273 + 31 * 30),
    ],
)
def test_views_grid_and_token_count_per_mode(mode, size, grid, count):
    resolution = FAMILY_MODES[OCR1][mode]
    views = preprocess(Image.new("RGB", size, "white"), resolution)
    assert views.grid == grid
    assert ocr1_image_tokens(resolution, views.grid, views.tiles is not None) == count
    side = resolution.global_size if resolution.crop else resolution.tile_size
    assert views.global_view.array.shape == (side, side, 3)
    if views.tiles is not None:
        assert views.tiles.array.shape == (grid[1] * 640, grid[0] * 640, 3) and views.tiles.grid == grid


def test_grid_choice_prefers_the_closest_aspect_ratio():
    assert ocr1_grid(1000, 3000, 640) == (1, 3)
    assert ocr1_grid(3000, 1000, 640) == (3, 1)
    assert ocr1_grid(1250, 1000, 640) == (3, 2)  # 1.25: 3/2 is closer than 1/1 (not allowed) or 2/2


@pytest.fixture(scope="module")
def tiny_v1(tmp_path_factory: pytest.TempPathFactory):
    return load_adapter(str(write_tiny_deepseek_ocr(tmp_path_factory.mktemp("tiny-ocr1"))), device="cpu")


def test_writer_checkpoint_is_in_the_original_format(tiny_v1):
    assert tiny_v1.family == OCR1
    assert tiny_v1.image_token_id == tiny_v1.tokenizer.convert_tokens_to_ids("<image>")
    assert (tiny_v1.eos_token_id, tiny_v1.pad_token_id) == (1, 2)


@pytest.mark.parametrize(("mode", "size"), [("tiny", (900, 500)), ("gundam", (1500, 700)), ("gundam", (500, 400))])
def test_prepared_tokens_match_the_features_the_model_makes(tiny_v1, mode, size):
    prepared = tiny_v1.prepare("<image>\nFree OCR.", Image.new("RGB", size, "white"), mode)
    with torch.inference_mode():
        features = tiny_v1.page_features(prepared.vision)
    assert prepared.input_ids.count(tiny_v1.image_token_id) == features.shape[0]
    assert prepared.input_ids[0] == tiny_v1.tokenizer.bos_token_id


def test_engine_generation_matches_a_full_forward(tiny_v1):
    """Greedy tokens through the slot cache, two pages side by side, equal the argmax of one uncached forward of
    the original model (input ids and image features) over prompt and tokens."""
    pages = [Image.new("RGB", (900, 1300), "white"), Image.new("RGB", (500, 400), "black")]
    batch = [tiny_v1.prepare("<image>\nFree OCR.", page, "gundam") for page in pages]
    engine = OcrEngine(tiny_v1)
    try:
        outputs = generate(engine, batch, SamplingParams(max_tokens=4))
    finally:
        engine.close()
    for sequence, tokens in zip(batch, outputs, strict=True):
        assert tokens, "the engine generated nothing"
        ids = torch.tensor([sequence.input_ids + tokens[:-1]])
        with torch.inference_mode():
            features = [tiny_v1.page_features(sequence.vision)]
            logits = tiny_v1.model(input_ids=ids, image_embeds=features, use_cache=False).logits
        expected = logits[0, len(sequence.input_ids) - 1 :].argmax(-1).tolist()
        assert tokens == expected[: len(tokens)]


def test_run_ocr_reads_a_page_with_the_tiny_v1(tiny_v1):
    limits = DocumentLimits()
    document = load_document(png_bytes(Image.new("RGB", (800, 600), "white")), name="page.png", limits=limits)
    request = OcrRequest(prompt="Free OCR.", documents=(document,), sampling=SamplingParams(max_tokens=5))
    result = run_ocr(OcrEngine(tiny_v1), request, limits=limits)
    assert len(result.pages) == 1
    assert result.pages[0].usage.completion_tokens > 0
    assert result.pages[0].usage.prompt_tokens > 273

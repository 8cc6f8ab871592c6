"""Continuous batching on tiny checkpoints of both families (fp32, CPU): rows join and leave the running batch at
different steps and every page still decodes to exactly its tokens alone. Orders are checked by events, never
by time."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from PIL import Image, ImageDraw

from ocr_engine.engine import OcrEngine
from ocr_engine.errors import LimitExceeded
from ocr_engine.models.loading import load_adapter
from ocr_engine.request import SamplingParams
from ocr_engine.rows import BACKGROUND
from ocr_engine.scheduler import SchedulerLimits
from ocr_engine.testing import write_tiny_deepseek_ocr
from tests.model.rows import Collect, EventLog, generate, model_logprobs, submit


def page(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for line in range(12):
        draw.text((rng.randint(0, size[0] - 90), rng.randint(0, size[1] - 20)), f"Row {line} {seed}", fill="black")
    return image


@pytest.fixture(scope="module", params=["deepseek-ocr-2", "deepseek-ocr"])
def adapter(request, tiny_checkpoint, tmp_path_factory):
    if request.param == "deepseek-ocr-2":
        return load_adapter(str(tiny_checkpoint), device="cpu")
    return load_adapter(str(write_tiny_deepseek_ocr(tmp_path_factory.mktemp("tiny-v1"))), device="cpu")


@pytest.fixture
def make_engine(adapter):
    engines: list[OcrEngine] = []

    def make(ngram_size: int = 30, window_size: int = 90, **limits) -> OcrEngine:
        engine = OcrEngine(adapter, limits=SchedulerLimits(**limits), ngram_size=ngram_size, window_size=window_size)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def pages(adapter):
    prompts = ["<image>\nFree OCR.", "<image>\n<|grounding|>Convert the document to markdown.", "<image>\nOCR."]
    sizes = [(640, 480), (1200, 900), (500, 700), (800, 500)]  # one with tiles in gundam mode
    return [adapter.prepare(prompts[i % 3], page(i, sizes[i]), "gundam") for i in range(4)]


def test_rows_joining_and_leaving_at_different_steps_decode_as_alone(make_engine, pages):
    """A long row runs; others join after it has made 3, 9 and 14 tokens, with budgets that make them leave at
    different steps; one prompt is prefilled in chunks between decode steps. Every row's tokens equal its
    tokens alone."""
    budgets = [40, 12, 20, 6]
    engine = make_engine(max_num_seqs=4, prefill_chunk=96)
    alone = [generate(engine, [p], SamplingParams(max_tokens=b))[0] for p, b in zip(pages, budgets, strict=True)]
    sinks = [Collect(str(i)) for i in range(4)]
    submit(engine, pages[0], SamplingParams(max_tokens=budgets[0]), sinks[0])
    for index, after in ((1, 3), (2, 9), (3, 14)):
        sinks[0].wait_for(lambda sink, after=after: len(sink.ids) >= after)
        submit(engine, pages[index], SamplingParams(max_tokens=budgets[index]), sinks[index])
    assert [sink.result()[0] for sink in sinks] == alone
    assert all(len(ids) == budget for ids, budget in zip(alone, budgets, strict=True))  # EOS is ignored by chance
    unchunked = make_engine(max_num_seqs=4)
    assert generate(unchunked, pages, SamplingParams(max_tokens=6)) == [ids[:6] for ids in alone]


def test_cancelling_one_row_mid_decode_leaves_the_others_as_alone(make_engine, pages):
    engine = make_engine(max_num_seqs=4)
    params = SamplingParams(max_tokens=24)
    alone = [generate(engine, [p], params)[0] for p in pages[:3]]
    sinks = [Collect(str(i)) for i in range(3)]
    rows = [submit(engine, p, params, sink) for p, sink in zip(pages[:3], sinks, strict=True)]
    sinks[1].wait_for(lambda sink: len(sink.ids) >= 5)
    rows[1].cancel()
    assert sinks[1].result()[1] == "cancelled" and len(sinks[1].ids) < 24
    assert [sinks[0].result()[0], sinks[2].result()[0]] == [alone[0], alone[2]]


def test_a_seeded_sampled_row_is_the_same_whatever_runs_beside_it(make_engine, pages, adapter):
    from ocr_engine.sampling import make_generator

    engine = make_engine(max_num_seqs=4)
    params = SamplingParams(max_tokens=16, temperature=0.9, top_p=0.95, seed=11)

    def sampled(neighbours: int) -> list[int]:
        sink = Collect()
        others = [Collect() for _ in range(neighbours)]
        for other, sequence in zip(others, pages[1:], strict=False):
            submit(engine, sequence, SamplingParams(max_tokens=10, temperature=1.0), other)
        submit(engine, pages[0], params, sink, generator=make_generator(params, adapter.device, 3))
        for other in others:
            other.result()
        return sink.result()[0]

    assert sampled(0) == sampled(3) == sampled(1)


@pytest.mark.parametrize("reserve", [1, 0])
def test_an_interactive_row_goes_ahead_of_every_waiting_background_row(make_engine, adapter, reserve):
    """200 background rows wait for 8 slots; an interactive row sent while they decode is the next row admitted,
    ahead of every background row that was waiting before it: at the next step with a reserved slot, at the
    next free slot without one."""
    engine = make_engine(max_num_seqs=8, interactive_reserve=reserve)
    log = EventLog()
    text = adapter.prepare("Free OCR of a long page.", None, "gundam")
    background = [Collect(f"bg{i}", log) for i in range(200)]
    rows = [
        submit(engine, text, SamplingParams(max_tokens=30), sink, priority=BACKGROUND, group="big")
        for sink in background
    ]
    background[0].wait_for(lambda sink: len(sink.ids) >= 3)
    chat = Collect("chat", log)
    before = len(log.snapshot())
    submit(engine, text, SamplingParams(max_tokens=4), chat, group="chat")
    chat.result()
    after = [name for what, name in log.snapshot()[before:] if what == "admitted"]
    assert after[0] == "chat", after[:5]
    for row in rows:
        row.cancel()
    for sink in background:
        sink.result()


def test_a_tiny_kv_budget_makes_rows_wait_and_loses_none(make_engine, pages):
    params = SamplingParams(max_tokens=10)
    longest = max(len(p.input_ids) for p in pages) + 10
    engine = make_engine(max_num_seqs=4, kv_cache_tokens=2 * 256 * (-(-longest // 256)), interactive_reserve=0)
    alone = [generate(engine, [p], params)[0] for p in pages]
    log = EventLog()
    sinks = [Collect(str(i), log) for i in range(len(pages))]
    for sequence, sink in zip(pages, sinks, strict=True):
        submit(engine, sequence, params, sink)
    assert [sink.result()[0] for sink in sinks] == alone
    admitted = 0
    for what, _ in log.snapshot():
        admitted += 1 if what == "admitted" else -1
        assert admitted <= 2, "more rows ran than the KV budget holds"
    deadline = time.monotonic() + 30  # released at the model thread's next iteration, once the batch is empty
    while engine.stats().kv_cache_tokens:
        assert time.monotonic() < deadline, "the cache was not released once idle"
        time.sleep(0.01)


def test_a_row_that_can_never_fit_the_kv_budget_is_refused(make_engine, pages):
    engine = make_engine(max_num_seqs=4, kv_cache_tokens=64)
    with pytest.raises(LimitExceeded, match="OCRSERVE_KV_CACHE_TOKENS"):
        submit(engine, pages[0], SamplingParams(max_tokens=10), Collect())


def test_the_repetition_guard_covers_every_generated_token_of_every_row(make_engine, pages):
    """With bigrams banned over a window of 8, no row (joining the batch at different times) ever repeats a
    bigram within 8 tokens, its first token included; the tiny model loops at once without the guard."""
    engine = make_engine(max_num_seqs=4, ngram_size=2, window_size=8)
    sinks = [Collect(str(i)) for i in range(3)]
    submit(engine, pages[0], SamplingParams(max_tokens=30), sinks[0])
    sinks[0].wait_for(lambda sink: len(sink.ids) >= 5)
    for sequence, sink in zip(pages[1:3], sinks[1:], strict=True):
        submit(engine, sequence, SamplingParams(max_tokens=30), sink)
    for sink in sinks:
        ids = sink.result()[0]
        for end in range(2, len(ids) + 1):
            window = ids[max(0, end - 9) : end]  # the 8 tokens the guard saw, and the one it allowed
            bigrams = list(itertools.pairwise(window))
            assert bigrams[-1] not in bigrams[:-1], (ids, end)


def test_slot_decoding_gives_the_logits_of_one_full_forward(adapter, pages):
    """Chunked prefill into slot 1 (slot 0 holds another row) and decode steps of both rows give, for each row,
    the logits one uncached forward over its whole sequence gives: masks, positions and slots are right."""
    import torch

    from ocr_engine.decoder import SlotDecoder

    decoder = SlotDecoder(adapter)
    rows = [adapter.embed(pages[2]), adapter.embed(pages[0])]
    decoder.cache.reserve(2, max(len(r) for r in rows) + 8, [])
    tokens: list[list[int]] = [[], []]
    with torch.inference_mode():
        for slot, embeds in enumerate(rows):
            for start in range(0, len(embeds), 100):
                logits = decoder.prefill(slot, embeds[start : start + 100], start)
            tokens[slot].append(int(logits.argmax()))
        for step in range(4):
            positions = torch.tensor([len(r) + step for r in rows])
            logits = decoder.decode(torch.tensor([t[-1] for t in tokens]), positions)
            for slot in range(2):
                full = torch.cat([rows[slot], adapter.decoder.embed_tokens(torch.tensor(tokens[slot]))])
                expected = adapter.lm_head(adapter.decoder(inputs_embeds=full[None]).last_hidden_state[0, -1])
                torch.testing.assert_close(logits[slot], expected.float(), atol=1e-4, rtol=1e-4)
                tokens[slot].append(int(logits[slot].argmax()))


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=8, logprobs=3),
        SamplingParams(max_tokens=8, logprobs=3, frequency_penalty=2.0, logit_bias={5: 3.0}),
    ],
)
def test_token_logprobs_are_the_log_softmax_of_the_model_logits(make_engine, pages, adapter, params):
    """A row decoding beside another reports, for each token, log_softmax of the logits an uncached forward gives
    (penalties and biases change which token is picked, never the reported figures) and the top 3 alternatives;
    the row beside it, which asks for none, still gets its chosen tokens' figures (its confidence), no top."""
    import torch

    engine = make_engine()
    asking, plain = Collect(), Collect()
    submit(engine, pages[1], params, asking)
    submit(engine, pages[0], SamplingParams(max_tokens=8), plain)
    for sink, sequence in ((asking, pages[1]), (plain, pages[0])):
        ids, _ = sink.result()
        expected = model_logprobs(adapter, sequence, ids)
        reported = torch.tensor([token.logprob for token in sink.logprobs])
        torch.testing.assert_close(reported, expected[torch.arange(len(ids)), ids], atol=1e-4, rtol=0)
        for token, row in zip(sink.logprobs, expected, strict=True):
            if sink is plain:
                assert token.top == ()
                continue
            values, top_ids = row.topk(3)
            assert [t for t, _ in token.top] == top_ids.tolist()
            torch.testing.assert_close(torch.tensor([v for _, v in token.top]), values, atol=1e-4, rtol=0)


def test_a_failing_step_fails_its_rows_and_the_model_thread_goes_on(make_engine, pages, monkeypatch):
    engine = make_engine(max_num_seqs=4)
    scheduler = engine.scheduler
    admit = scheduler._admit
    running = Collect("running")
    submit(engine, pages[0], SamplingParams(max_tokens=200), running)
    running.wait_for(lambda sink: len(sink.ids) >= 2)

    def broken() -> None:
        monkeypatch.setattr(scheduler, "_admit", admit)  # once
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(scheduler, "_admit", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        running.result()
    after = Collect("after")
    submit(engine, pages[1], SamplingParams(max_tokens=3), after)
    assert after.result()[1] == "length"

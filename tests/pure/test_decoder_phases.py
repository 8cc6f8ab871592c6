"""Which MoE experts kernel each phase of the decode loop uses."""

from ocr_engine.decoder import experts_implementation


def test_an_accelerator_uses_grouped_mm_to_prefill_and_batched_mm_to_decode():
    assert experts_implementation("prefill", "cuda", None) == "grouped_mm"
    assert experts_implementation("decode", "cuda", "grouped_mm") == "batched_mm"


def test_the_cpu_keeps_what_the_model_was_loaded_with():
    assert experts_implementation("decode", "cpu", "eager") == "eager"
    assert experts_implementation("prefill", "cpu", None) is None

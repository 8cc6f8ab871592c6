"""What one OCR job asks of the engine. Plain msgspec Structs so a job can cross a queue unchanged."""

from __future__ import annotations

from typing import Literal

import msgspec

from ocr_engine.prompts import image_prompt

DocumentKind = Literal["pdf", "image"]
OutputFormat = Literal["markdown", "raw", "layout"]

DEFAULT_PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"
# As vLLM: below this a temperature is greedy decoding (dividing by it would overflow the scores to inf/NaN).
GREEDY_BELOW = 1e-5


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """Decoding settings; `temperature == 0` means greedy. `max_tokens` is per page (None: up to the model's length).

    The penalties and biases are OpenAI's and vLLM's (`ocr_engine.logits`): `frequency_penalty` and
    `presence_penalty` subtract from the scores of tokens the page has generated (per occurrence, or once),
    `repetition_penalty` divides positive and multiplies negative scores of tokens in its prompt or output,
    `logit_bias` adds to a token's score, and `min_tokens` / `ignore_eos` keep the end-of-sequence token out.
    `logprobs` asks for the tokens' log probabilities in the results (their confidence is always worked out).
    """

    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] = msgspec.field(default_factory=dict)
    min_tokens: int = 0
    ignore_eos: bool = False
    logprobs: int | None = None  # report each token's log probability and this many alternatives (None: none)

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @property
    def adjusts_scores(self) -> bool:
        """Whether any of the penalties, biases or end-of-sequence rules is set (most requests set none)."""
        return bool(
            self.frequency_penalty
            or self.presence_penalty
            or self.repetition_penalty != 1.0
            or self.logit_bias
            or self.min_tokens
            or self.ignore_eos
        )


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved input document: raw bytes whose kind was sniffed from the bytes, and the pages to read."""

    data: bytes
    kind: DocumentKind
    name: str = ""
    page_count: int = 1
    pages: tuple[int, ...] | None = None  # 0-based selection; None = every page

    @property
    def selected_pages(self) -> tuple[int, ...]:
        return self.pages if self.pages is not None else tuple(range(self.page_count))


class OcrRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One job: documents (possibly none, for text-only chat), the instruction, and how to decode and format."""

    prompt: str
    prompt_token_ids: tuple[int, ...] | None = None  # a text-only prompt given as token ids: decoded as they are
    documents: tuple[Document, ...] = ()
    sampling: SamplingParams = SamplingParams()
    output_format: OutputFormat = "markdown"
    mode: str | None = None  # resolution mode (ocr_engine.modes); None = the model family's default
    dpi: int = 144
    page_separator: str = DEFAULT_PAGE_SEPARATOR
    first_page: int = 0  # a shard of a larger job: its pages are the job's from here (their sampling seeds are)

    @property
    def sequence_prompt(self) -> str:
        """The prompt each of its sequences starts with: one image placeholder before the instruction for a page,
        the text as it is for a text-only job."""
        return image_prompt(self.prompt) if self.documents else self.prompt

    @property
    def text_separator(self) -> str:
        """What goes between two pages' text: the page separator, or nothing for layout JSON lines (each ends in
        its own newline)."""
        return "" if self.output_format == "layout" else self.page_separator

    @property
    def page_total(self) -> int:
        return sum(len(d.selected_pages) for d in self.documents)

    @property
    def sequence_count(self) -> int:
        """The pages as a job counts them: one sequence each, and one for a text-only request."""
        return max(self.page_total, 1)

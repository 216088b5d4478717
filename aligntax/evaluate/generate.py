"""Greedy generation of summaries, shared by every method (batching in aligntax.generation).

The model input is ``prompt_prefix + build_prompt(template, post)``; the decoded continuation,
stripped, up to the first end token, is the summary. Posts are generated longest-first so each
batch pads little; the output order is the input order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from aligntax.config import check
from aligntax.generation import generate_ids
from aligntax.models import build_prompt

log = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    max_new_tokens: int = 64
    """New tokens per summary at most (paper: 64)."""
    batch_size: int = 24
    """Prompts per generate() call."""

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "evaluate.generate.max_new_tokens", "an integer >= 1")
        check(self.batch_size >= 1, "evaluate.generate.batch_size", "an integer >= 1")


@dataclass(frozen=True)
class Generation:
    text: str
    """The decoded continuation, stripped."""
    n_tokens: int
    """New tokens produced before the end-of-sequence token (or the limit)."""
    finished: bool
    """True when the model emitted an end-of-sequence token within max_new_tokens."""


def stop_token_ids(model: PreTrainedModel) -> list[int]:
    """Token ids that end a summary: the model's eos, which prepare-model made the tokenizer's eos
    (``aligntax.models.align_special_tokens``), so it is also the token training appends."""
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [] if eos is None else [eos]
    if not ids:
        raise ValueError("the model's generation_config has no eos_token_id; prepare it with `dvc repro prepare-model`")
    return ids


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    posts: Sequence[str],
    prompt_template: str,
    cfg: GenerateConfig,
    logits_processors: Sequence[LogitsProcessor] | None = None,
    prompt_prefix: str = "",
) -> list[Generation]:
    """Greedy summaries of ``posts`` with their token counts and whether each one finished."""
    if tokenizer.pad_token is None:
        raise ValueError("tokenizer has no pad token; load it with aligntax.models.load_tokenizer")
    prompts = [prompt_prefix + build_prompt(prompt_template, p) for p in posts]
    stops = stop_token_ids(model)
    new = generate_ids(model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size, eos_token_id=stops,
                       logits_processors=logits_processors)
    return [_decode(ids, stops, tokenizer) for ids in new]


def _decode(ids: list[int], stops: list[int], tokenizer: PreTrainedTokenizerBase) -> Generation:
    end = next((k for k, t in enumerate(ids) if t in stops), None)
    kept = ids if end is None else ids[:end]
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return Generation(text=text, n_tokens=len(kept), finished=end is not None)


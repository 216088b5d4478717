"""Batched greedy generation of summaries, left-padded, shared by every method.

The model input is ``prompt_prefix + build_prompt(template, post)``; the decoded continuation,
stripped, is the summary. Posts are generated longest-first so each batch pads little; the
output order is the input order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from aligntax.config import check
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


class _Progress(StoppingCriteria):
    """Advances a tqdm bar by one decoding step per call; never stops generation."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.bar.update(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


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
    gen_cfg = GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, do_sample=False, num_beams=1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=stops,
    )
    processors = LogitsProcessorList(logits_processors or [])
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    results: list[Generation | None] = [None] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    model.eval()
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    # One bar over decoding steps (a single batch is the default, so a bar over batches says nothing).
    bar = tqdm(total=len(batches) * cfg.max_new_tokens, desc="generate", unit="step", disable=not prompts)
    try:
        for batch in batches:
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True)
            ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                     logits_processor=processors,
                                     stopping_criteria=StoppingCriteriaList([_Progress(bar)]))
            new = out[:, ids.shape[1]:].tolist()
            for i, ids in zip(batch, new, strict=True):
                results[i] = _decode(ids, stops, tokenizer)
    finally:
        bar.close()
        tokenizer.padding_side = side
    return results  # type: ignore[return-value]


def _decode(ids: list[int], stops: list[int], tokenizer: PreTrainedTokenizerBase) -> Generation:
    end = next((k for k, t in enumerate(ids) if t in stops), None)
    kept = ids if end is None else ids[:end]
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return Generation(text=text, n_tokens=len(kept), finished=end is not None)


"""Batched causal-LM generation and prompt budgets, once for every package that generates.

aligntax/augment (sampled rewrites, greedy fills) and aligntax/evaluate (greedy summaries) both
call ``generate_ids``: left-padded batches under ``torch.inference_mode``, one tqdm bar over
decoding steps, and the new token ids of every prompt in input order (each caller decodes them
its own way). ``truncate_text`` cuts a text to a token budget before it goes into a prompt, so
one very long post cannot blow up a batch (a 200k-character post once took > 300 s).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def device() -> torch.device:
    """Where models run: the current GPU when there is one (under a launcher: this process's GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def truncate_text(tok: PreTrainedTokenizerBase, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens; unchanged (the same string) when it fits."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tok.decode(ids[:max_tokens], skip_special_tokens=True)


class _Progress(StoppingCriteria):
    """Advances a tqdm bar by one decoding step per call; never stops generation."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.bar.update(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _StopAtAny(StoppingCriteria):
    """Stops a row once its continuation (after ``prompt_len``) contains one of ``stop_ids``."""

    def __init__(self, stop_ids: torch.Tensor, prompt_len: int):
        self.stop_ids, self.prompt_len = stop_ids, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, self.prompt_len:], self.stop_ids).any(dim=1)


def _order(tok: PreTrainedTokenizerBase, prompts: Sequence[str], longest_first: bool) -> list[int]:
    if not longest_first:
        return list(range(len(prompts)))
    lengths = [len(ids) for ids in tok(list(prompts))["input_ids"]]
    return sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    *,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | list[int] | None = None,
    stop_ids: torch.Tensor | None = None,
    logits_processors: Sequence[LogitsProcessor] | None = None,
    longest_first: bool = True,
) -> list[list[int]]:
    """The new token ids of each prompt (greedy, or sampled when ``sample``), in input order.

    ``longest_first`` batches the prompts longest first (less padding; the output order is the
    input order either way). ``seed``: ``torch.manual_seed(seed * 100_003 + batch index)`` before
    each batch, so sampled text depends only on the prompts and the seed. ``eos_token_id``: the
    tokens that end a row (None: the model's). ``stop_ids``: also stop a row once it generated
    any of these tokens (kept in the ids). Rows that stop early are padded with the pad token.
    """
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1, pad_token_id=tok.pad_token_id,
        eos_token_id=eos_token_id, **(dict(temperature=temperature, top_p=top_p) if sample else {}),
    )
    processors = LogitsProcessorList(logits_processors or [])
    order = _order(tok, prompts, longest_first)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    results: list[list[int]] = [[] for _ in prompts]
    side, tok.padding_side = tok.padding_side, "left"
    model.eval()
    # One bar over decoding steps (a single batch is common, so a bar over batches says nothing).
    bar = tqdm(total=len(batches) * max_new_tokens, desc="generate", unit="step", disable=not prompts)
    try:
        for b, batch in enumerate(batches):
            enc = tok([prompts[i] for i in batch], return_tensors="pt", padding=True)
            ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
            stops: list[StoppingCriteria] = [_Progress(bar)]
            if stop_ids is not None:
                stops.append(_StopAtAny(stop_ids.to(model.device), ids.shape[1]))
            if seed is not None:
                torch.manual_seed(seed * 100_003 + b)
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                 logits_processor=processors, stopping_criteria=StoppingCriteriaList(stops))
            for i, new in zip(batch, out[:, ids.shape[1]:].tolist(), strict=True):
                results[i] = new
    finally:
        bar.close()
        tok.padding_side = side
    return results

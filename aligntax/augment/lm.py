"""Batched causal-LM calls of the augmentation stages: sampling, greedy fill and lowest beam.

All calls use left padding and run in batches under ``torch.inference_mode``; sampling is seeded
per batch so a chunk gives the same text whether it runs alone, resumed or on another shard.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from aligntax.models import load_model, load_tokenizer

log = logging.getLogger(__name__)


def device() -> torch.device:
    """The first GPU when there is one (pick it with CUDA_VISIBLE_DEVICES per shard), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_lm(name: str | Path, base_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``base`` -> the prepared base model in ``base_dir``; a folder or hub id -> that causal LM."""
    if str(name) == "base" or Path(name).is_dir():
        path = base_dir if str(name) == "base" else name
        model, tok = load_model(path), load_tokenizer(path, padding_side="left")
    else:
        try:
            tok = AutoTokenizer.from_pretrained(name, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(name)
        except OSError as err:
            raise RuntimeError(
                f"could not load LM '{name}' ({str(err).splitlines()[0]}); a hub id needs network "
                "access, use 'base' for the prepared base model"
            ) from err
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return model.to(device()).eval(), tok


class _StopAtNewline(StoppingCriteria):
    """Stops a row once its continuation contains a token that decodes to a line break."""

    def __init__(self, newline_ids: torch.Tensor, prompt_len: int):
        self.newline_ids, self.prompt_len = newline_ids, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, self.prompt_len:], self.newline_ids).any(dim=1)


def newline_ids(tok: PreTrainedTokenizerBase) -> torch.Tensor:
    """Ids of every token whose text contains a line break."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return torch.tensor([i for i, t in enumerate(texts) if "\n" in t], dtype=torch.long)


def truncate_text(tok: PreTrainedTokenizerBase, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens (very long posts must not blow up a batch)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tok.decode(ids[:max_tokens], skip_special_tokens=True)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    seed: int = 0,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_ids: torch.Tensor | None = None,
) -> list[str]:
    """Continuation of each prompt (greedy, or sampled when ``sample``), decoded without specials."""
    out: list[str] = []
    for b, (lo, hi) in enumerate(_batches(len(prompts), batch_size)):
        enc = tok(list(prompts[lo:hi]), return_tensors="pt", padding=True, return_token_type_ids=False).to(model.device)
        width = enc["input_ids"].shape[1]
        stop = StoppingCriteriaList([_StopAtNewline(stop_ids.to(model.device), width)]) if stop_ids is not None else None
        torch.manual_seed(seed * 100_003 + b)
        kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p) if sample else dict(do_sample=False)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             stopping_criteria=stop, **kwargs)
        out.extend(tok.batch_decode(ids[:, width:], skip_special_tokens=True))
    return out


@torch.inference_mode()
def lowest_beams(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    num_beams: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[tuple[str, float]]:
    """sys_lowcon: per prompt the lowest-scoring of its ``num_beams`` beam summaries and its score."""
    out: list[tuple[str, float]] = []
    for lo, hi in _batches(len(prompts), batch_size):
        enc = tok(list(prompts[lo:hi]), return_tensors="pt", padding=True, return_token_type_ids=False).to(model.device)
        width = enc["input_ids"].shape[1]
        res = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                             num_return_sequences=num_beams, output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(res.sequences[:, width:], skip_special_tokens=True)
        scores = res.sequences_scores.float().cpu().view(hi - lo, num_beams)
        for row in range(hi - lo):
            j = int(scores[row].argmin())
            out.append((texts[row * num_beams + j], float(scores[row, j])))
    return out

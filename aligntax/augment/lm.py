"""Causal-LM calls of the augmentation stages: loading, sampling, greedy fill and lowest beam.

Sampling and greedy fills go through aligntax.generation (left-padded batches, seeded per batch,
so a chunk gives the same text whether it runs alone, resumed or in another process); prompts are
cut with ``aligntax.generation.truncate_text``.
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
)

from aligntax.generation import device, generate_ids
from aligntax.models import load_model, load_tokenizer

log = logging.getLogger(__name__)


def lm_folders(name: str | Path, base_dir: str | Path) -> list[Path]:
    """The local folder ``load_lm`` reads for ``name`` (none for a hub id): a chunk fingerprint input,
    so a changed model in the same folder never reuses chunks written with the old one."""
    if str(name) == "base":
        return [Path(base_dir)]
    return [Path(name)] if Path(name).is_dir() else []


def load_lm(name: str | Path, base_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``base`` -> the prepared base model in ``base_dir``; a folder or hub id -> that causal LM."""
    if str(name) == "base" or Path(name).is_dir():
        path = base_dir if str(name) == "base" else name
        model, tok = load_model(path), load_tokenizer(path, padding_side="left")
    else:
        try:
            tok = AutoTokenizer.from_pretrained(name, padding_side="left", trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=False)
        except OSError as err:
            raise RuntimeError(
                f"could not load LM '{name}' ({str(err).splitlines()[0]}); a hub id needs network "
                "access, use 'base' for the prepared base model"
            ) from err
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return model.to(device()).eval(), tok


def newline_ids(tok: PreTrainedTokenizerBase) -> torch.Tensor:
    """Ids of every token whose text contains a line break."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return torch.tensor([i for i, t in enumerate(texts) if "\n" in t], dtype=torch.long)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


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
    """Continuation of each prompt (greedy, or sampled when ``sample``), decoded without specials.

    Batches keep the input order, so a seeded batch holds the same prompts however the posts were
    sorted elsewhere; ``stop_ids`` (e.g. ``newline_ids``) end a row early.
    """
    ids = generate_ids(model, tok, prompts, max_new_tokens, batch_size, sample=sample, temperature=temperature,
                       top_p=top_p, seed=seed, stop_ids=stop_ids, longest_first=False)
    return tok.batch_decode(ids, skip_special_tokens=True)


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

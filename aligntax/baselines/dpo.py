"""DPO (Rafailov et al. 2023) with trl's DPOTrainer: chosen = reference, rejected = a negative.

The rejected summaries are the toxic and unfaithful negatives of the groups artifact. Like every
trained baseline it starts from `base` with the `sft` budget, so by default the loss adds trl's
"sft" term (NLL of the chosen summary, as in RPO) to the sigmoid DPO loss: without it a model
that never saw a TL;DR would only learn to rank, not to summarise. The reference log-probs are
computed once before training (trl's `precompute_ref_log_probs`, from the policy as loaded: the
starting model), so no reference copy is loaded; with `dpo.precompute_ref: false` the reference
is an explicit frozen copy of the starting model, run every step (trl cannot reload a model from
a bare config).
Only posts with a negative give pairs. A DPO pair costs ~3.6 `sft` examples of CPU time (measured
with the reference run every step: 2.45 s vs 0.68 s; policy and reference each read chosen and
rejected; precomputing the reference costs the same at one epoch and saves its memory and every
later epoch's reference pass), so one pair per post keeps DPO near the `sft` wall time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer

from aligntax.baselines.negatives import check_kinds, negatives_by_post
from aligntax.config import check
from aligntax.models import build_prompt, load_model
from aligntax.schema import NEGATIVE_KINDS
from aligntax.train.core import Job, TrainInputs
from aligntax.train.packing import prompt_ids

log = logging.getLogger(__name__)


@dataclass
class DpoConfig:
    beta: float = 0.1
    """KL strength of DPO (trl default 0.1)."""
    sft_weight: float = 1.0
    """Weight of the NLL of the chosen summary added to the DPO loss (0 = plain DPO)."""
    negative_kinds: list[str] = field(default_factory=lambda: list(NEGATIVE_KINDS))
    """Kinds of negatives of the groups artifact used as rejected summaries."""
    max_pairs_per_post: int = 1
    """(chosen, rejected) pairs per post, a seeded sample of its negatives."""
    precompute_ref: bool = True
    """Reference log-probs computed once before training (trl precompute_ref_log_probs), not every step."""

    def __post_init__(self) -> None:
        check(self.beta > 0, "dpo.beta", "a number > 0")
        check(self.sft_weight >= 0, "dpo.sft_weight", "a number >= 0")
        check_kinds(self.negative_kinds, "dpo.negative_kinds")
        check(self.max_pairs_per_post >= 1, "dpo.max_pairs_per_post", "an integer >= 1")


CONFIG = DpoConfig
NEEDS_GROUPS = True


def preference_rows(pairs: pd.DataFrame, template: str, prompt_fn=None) -> pd.DataFrame:
    """trl's preference format from ``negatives_by_post`` rows: prompt, chosen, rejected.

    Completions start with the space that separates prompt and summary everywhere in aligntax;
    trl appends eos, so prompt + chosen is exactly the SFT training sequence. ``prompt_fn``
    (post -> prompt) replaces ``build_prompt`` e.g. to cut long posts to the prompt budget.
    """
    prompt_fn = prompt_fn or (lambda post: build_prompt(template, post))
    return pd.DataFrame({
        "prompt": [prompt_fn(p) for p in pairs["post"]],
        "chosen": [" " + s.strip() for s in pairs["reference"]],
        "rejected": [" " + s.strip() for s in pairs["negative"]],
    })


def dpo_args(cfg: DpoConfig, max_length: int) -> dict:
    """DPOConfig fields beyond the shared `train` section (trl keeps its own column handling)."""
    loss_type, weights = (["sigmoid", "sft"], [1.0, cfg.sft_weight]) if cfg.sft_weight > 0 else (["sigmoid"], [1.0])
    return {"beta": cfg.beta, "loss_type": loss_type, "loss_weights": weights, "max_length": max_length,
            "truncation_mode": "keep_start", "remove_unused_columns": True, "use_cpu": not torch.cuda.is_available(),
            "precompute_ref_log_probs": cfg.precompute_ref}


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, cfg: DpoConfig) -> Job:
    """Pairs (reference, a negative) of the train posts in trl's format; the reference log-probs precomputed
    (or a frozen copy of base as reference model)."""
    template, train_cfg = inputs.model.prompt_template, inputs.train
    pairs, counts = negatives_by_post(inputs.raw, inputs.groups, cfg.negative_kinds, cfg.max_pairs_per_post,
                                      inputs.seed)
    if pairs.empty:
        raise ValueError("dpo: no (chosen, rejected) pairs; the groups artifact has no negatives of dpo.negative_kinds")

    def prompt_fn(post: str) -> str:
        ids, cut = prompt_ids(tok, template, post, train_cfg.max_prompt_tokens)
        return tok.decode(ids, skip_special_tokens=True) if cut else build_prompt(template, post)

    rows = preference_rows(pairs, template, prompt_fn)
    return Job(
        Dataset.from_pandas(rows[["prompt", "chosen", "rejected"]].reset_index(drop=True)), counts,
        trainer_cls=DPOTrainer, args_cls=DPOConfig,
        args_extra=dpo_args(cfg, train_cfg.max_prompt_tokens + train_cfg.max_summary_tokens + 1),
        trainer_kwargs={"ref_model": None if cfg.precompute_ref else load_model(inputs.base_dir, dtype="float32"),
                        "processing_class": tok},
        logged=("rewards/margins", "rewards/accuracies"),
    )

"""DPO (Rafailov et al. 2023) with trl's DPOTrainer: chosen = reference, rejected = a negative.

The rejected summaries are the toxic and unfaithful negatives of the groups artifact. Like every
trained baseline it starts from `base` with the `sft` budget, so by default the loss adds trl's
"sft" term (NLL of the chosen summary, as in RPO) to the sigmoid DPO loss: without it a model
that never saw a TL;DR would only learn to rank, not to summarise. The reference log-probs are
computed once before training (trl's `precompute_ref_log_probs`, from the policy as loaded: the
starting model), so no reference copy is loaded; with `dpo.precompute_ref: false` the reference
is an explicit frozen copy of the starting model, run every step (trl cannot reload a model from
a bare config).
With `train.trainable: top_layers` and `train.frozen_cache` (the default) the policy trains on the
cached frozen states like every other method (``AlignDPOTrainer``): ``pieces`` tokenizes a pair as
trl does, the store is filled before trl starts, and the reference pass and every step run the top
blocks only.
trl's defaults of bf16 autocast and gradient checkpointing are turned off (every other method
trains in the model's dtype and keeps its activations), and on CPU its fused LM head scores only
the completion tokens (``label_positions_only``). Only posts with a negative give pairs; one pair
per post by default (docs/training.md: DPO's CPU cost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
import trl.trainer.utils as trl_utils
from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer
from trl.data_utils import common_prefix_length

from aligntax.baselines.negatives import check_kinds, negatives_by_post
from aligntax.config import check
from aligntax.models import build_prompt, load_model
from aligntax.schema import NEGATIVE_KINDS
from aligntax.train.core import Job, TrainInputs
from aligntax.train.frozen import FrozenStore, top_on_rows
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


def label_positions_only() -> Callable[[], None]:
    """Make trl's fused LM head score only the positions with a label on CPU too; returns the undo.

    On a device without Triton the head scores every position of a row (prompt and padding too,
    masked afterwards) so that a compiled kernel's tile shapes never change; CPU compiles nothing,
    and the prompt is most of a DPO row, so scoring it is most of a step there. The per-token values
    are those of the full pass (the same function on fewer rows)."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    return lambda: setattr(trl_utils, "_use_triton", original)


class AlignDPOTrainer(DPOTrainer):
    """trl's DPOTrainer with two CPU economies, on from the reference pass (trl runs it in ``__init__``)
    to the end of ``train``: the LM head scores only the completions (``label_positions_only``), and
    given ``frozen`` (a filled ``FrozenStore``) the policy's decoder runs only the blocks above the
    store's split, on the stored states (``frozen.top_on_rows``)."""

    def __init__(self, *args, frozen: FrozenStore | None = None, **kwargs):
        self._undo = [label_positions_only()]
        if frozen is not None:
            self._undo.append(top_on_rows(kwargs["model"], frozen))
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:
            self._restore()


def trl_pieces(tok: PreTrainedTokenizerBase, max_length: int):
    """(prompt ids, [chosen ids, rejected ids]) of a pair as trl 1.16 tokenizes and cuts it: eos added to
    each completion, prompt + completion tokenized together, the completion starting where the prompt
    alone and prompt + completion diverge, each row cut to ``max_length`` (keep_start)."""
    eos = tok.eos_token

    def pieces(example) -> tuple[list[int], list[list[int]]]:
        prompt = tok(text=example["prompt"]).input_ids
        rows = [tok(text=example["prompt"] + c + ("" if c.endswith(eos) else eos)).input_ids
                for c in (example["chosen"], example["rejected"])]
        start = min(common_prefix_length(prompt, row) for row in rows)
        return prompt[:start], [row[start:max_length] for row in rows]

    return pieces


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
            # trl's DPOConfig turns bf16 autocast and gradient checkpointing on by default, on CPU too; every
            # other method trains in the dtype its model loads in and keeps its activations (TrainingArguments'
            # defaults), and so does DPO
            "bf16": False, "gradient_checkpointing": False,
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
    max_length = train_cfg.max_prompt_tokens + train_cfg.max_summary_tokens + 1
    return Job(
        Dataset.from_pandas(rows[["prompt", "chosen", "rejected"]].reset_index(drop=True)), counts,
        trainer_cls=AlignDPOTrainer, args_cls=DPOConfig, args_extra=dpo_args(cfg, max_length),
        trainer_kwargs={"ref_model": None if cfg.precompute_ref else load_model(inputs.base_dir, dtype="float32"),
                        "processing_class": tok},
        logged=("rewards/margins", "rewards/accuracies"), pieces=trl_pieces(tok, max_length),
    )

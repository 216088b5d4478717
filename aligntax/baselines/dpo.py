"""DPO (Rafailov et al. 2023) with trl's DPOTrainer: chosen = reference, rejected = a negative.

The rejected summaries are the toxic and unfaithful negatives of the groups artifact. Like every
trained baseline it starts from `base` with the `sft` budget, so by default the loss adds trl's
"sft" term (NLL of the chosen summary, as in RPO) to the sigmoid DPO loss: without it a model
that never saw a TL;DR would only learn to rank, not to summarise. The reference model is an
explicit frozen copy of the starting model (trl cannot reload a model from a bare config).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligntax.baselines.negatives import NEGATIVE_KINDS, negatives_by_post
from aligntax.config import check
from aligntax.models import ModelConfig, build_prompt, load_model, load_tokenizer
from aligntax.train.packing import prompt_ids
from aligntax.train.trainer import TrainConfig, save_model, select_trainable

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
    n_posts: int = 0
    """Posts read (first n of the train split; 0 = `train.n_posts`). Only posts with a negative give
    pairs (39 of the default 128). A DPO pair costs ~3.6 `sft` examples of CPU time (measured: 2.45 s
    vs 0.68 s; policy and frozen reference each read chosen and rejected), so one pair from each of
    them keeps DPO near the `sft` wall time; 2 per post (60 pairs) took 147 s vs `sft`'s 87 s."""

    def __post_init__(self) -> None:
        check(self.beta > 0, "dpo.beta", "a number > 0")
        check(self.sft_weight >= 0, "dpo.sft_weight", "a number >= 0")
        check(len(self.negative_kinds) > 0 and set(self.negative_kinds) <= set(NEGATIVE_KINDS),
              "dpo.negative_kinds", f"a non-empty subset of {list(NEGATIVE_KINDS)}")
        check(self.max_pairs_per_post >= 1, "dpo.max_pairs_per_post", "an integer >= 1")
        check(self.n_posts >= 0, "dpo.n_posts", "an integer >= 0 (0 = train.n_posts)")


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


def dpo_trainer(
    model: PreTrainedModel,
    ref_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: pd.DataFrame,
    cfg: DpoConfig,
    *,
    out_dir: str | Path,
    seed: int,
    lr: float,
    epochs: float,
    batch_size: int,
    grad_accum: int,
    warmup_ratio: float = 0.0,
    max_grad_norm: float = 1.0,
    max_length: int = 1024,
    logging_steps: int = 1,
):
    """A ready DPOTrainer on ``rows`` (prompt, chosen, rejected); ``ref_model`` is frozen by trl."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if rows.empty:
        raise ValueError("dpo: no (chosen, rejected) pairs; the groups artifact has no negatives of dpo.negative_kinds")
    loss_type, weights = (["sigmoid", "sft"], [1.0, cfg.sft_weight]) if cfg.sft_weight > 0 else (["sigmoid"], [1.0])
    args = DPOConfig(
        output_dir=str(out_dir), beta=cfg.beta, loss_type=loss_type, loss_weights=weights,
        learning_rate=lr, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum, lr_scheduler_type="linear", warmup_ratio=warmup_ratio,
        max_grad_norm=max_grad_norm, max_length=max_length, truncation_mode="keep_start",
        logging_steps=logging_steps, save_strategy="no", report_to=[], seed=seed, data_seed=seed,
        dataloader_num_workers=0, dataloader_pin_memory=False, use_cpu=not _has_accelerator(),
    )
    dataset = Dataset.from_pandas(rows[["prompt", "chosen", "rejected"]].reset_index(drop=True))
    return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=tokenizer)


def _has_accelerator() -> bool:
    return torch.cuda.is_available()


def run_dpo(
    base_dir: str | Path, raw: pd.DataFrame, groups: pd.DataFrame, cfg: DpoConfig, train_cfg: TrainConfig,
    model_cfg: ModelConfig, out_dir: str | Path, seed: int,
) -> dict:
    """DPO from ``base_dir`` on the first ``cfg.n_posts`` posts' pairs with the `sft` settings; metrics."""
    n_posts = cfg.n_posts or train_cfg.n_posts
    if n_posts:
        raw = raw.iloc[:n_posts]
    pairs, counts = negatives_by_post(raw, groups, cfg.negative_kinds, cfg.max_pairs_per_post, seed)
    tok = load_tokenizer(base_dir)

    def prompt_fn(post: str) -> str:
        ids, cut = prompt_ids(tok, model_cfg.prompt_template, post, train_cfg.max_prompt_tokens)
        return tok.decode(ids, skip_special_tokens=True) if cut else build_prompt(model_cfg.prompt_template, post)

    rows = preference_rows(pairs, model_cfg.prompt_template, prompt_fn)
    torch.manual_seed(seed)
    model = select_trainable(load_model(base_dir, dtype="float32"), train_cfg)
    ref_model = load_model(base_dir, dtype="float32")
    trainer = dpo_trainer(
        model, ref_model, tok, rows, cfg, out_dir=Path(out_dir).with_name(f".{Path(out_dir).name}.checkpoints"),
        seed=seed, lr=train_cfg.lr, epochs=train_cfg.epochs, batch_size=train_cfg.batch_size,
        grad_accum=train_cfg.grad_accum, warmup_ratio=train_cfg.warmup_ratio, max_grad_norm=train_cfg.max_grad_norm,
        max_length=train_cfg.max_prompt_tokens + train_cfg.max_summary_tokens + 1,
        logging_steps=train_cfg.logging_steps,
    )
    start = time.time()
    result = trainer.train()
    seconds = time.time() - start
    save_model(trainer.model, tok, out_dir)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    keys = ("loss", "rewards/margins", "rewards/accuracies")
    return {
        "rows": counts, "steps": result.global_step, "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "first": {k: logs[0][k] for k in keys if logs and k in logs[0]},
        "last": {k: logs[-1][k] for k in keys if logs and k in logs[-1]},
    }

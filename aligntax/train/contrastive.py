"""Contrastive fine-tuning: CE on the reference + alpha * w * InfoNCE over each post's group."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from aligntax.models import ModelConfig, load_model, load_tokenizer
from aligntax.train.groups import build_posts
from aligntax.train.loss import LossConfig, group_weight
from aligntax.train.packing import Variant, encode
from aligntax.train.trainer import TrainConfig, train

log = logging.getLogger(__name__)


def run_contrastive(
    base_dir: str | Path,
    raw: pd.DataFrame,
    groups: pd.DataFrame,
    train_cfg: TrainConfig,
    loss_cfg: LossConfig,
    model_cfg: ModelConfig,
    out_dir: str | Path,
    seed: int,
    *,
    checkpoint_dir: str | Path | None = None,
    live_dir: str | Path | None = None,
) -> dict:
    """Train on the first ``train_cfg.n_posts`` raw posts with their groups; save to ``out_dir``."""
    if train_cfg.n_posts:
        raw = raw.iloc[: train_cfg.n_posts]
    posts, counts = build_posts(raw, groups, train_cfg.max_variants)
    tok = load_tokenizer(base_dir)
    encoded, enc_counts = [], Counter()
    for p in tqdm(posts, desc="encode", leave=False):
        variants = p.variants
        if not loss_cfg.entity_pooling:
            variants = [Variant(v.text, v.positive) for v in variants]
        ex, c = encode(tok, model_cfg.prompt_template, p.post, variants, train_cfg.max_prompt_tokens,
                       train_cfg.max_summary_tokens, group_weight(p.toxicity, loss_cfg), p.contrastive)
        enc_counts.update(c)
        encoded.append(ex)
    if not any(e.contrastive for e in encoded):
        raise ValueError("no post has a valid contrastive group (>= 2 positives and >= 1 negative) among "
                         "the training posts; check data/augment/groups.parquet (dvc repro entity-perturb)")
    model = load_model(base_dir, dtype="float32")
    log.info("contrastive training on %d posts (%d with a group), scale=%s",
             len(encoded), counts["posts_contrastive"], loss_cfg.scale)
    metrics = train(model, tok, encoded, train_cfg, seed, out_dir, loss_cfg, checkpoint_dir, live_dir)
    weights = [e.weight for e in encoded if e.contrastive]
    return {"rows": counts | dict(sorted(enc_counts.items())), "scale": loss_cfg.scale,
            "w_posts_mean": sum(weights) / len(weights), **metrics}

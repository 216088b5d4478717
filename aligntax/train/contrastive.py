"""Contrastive fine-tuning: CE on the reference + alpha * w * InfoNCE over each post's group."""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial

from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligntax.ner import content_spans
from aligntax.train.core import Job, TrainInputs
from aligntax.train.groups import build_posts
from aligntax.train.loss import LossConfig, group_weight
from aligntax.train.objective import attach_head
from aligntax.train.packing import Variant, collate, encode, pieces

log = logging.getLogger(__name__)

CONFIG = LossConfig
NEEDS_GROUPS = True


def _attach_head(model: PreTrainedModel) -> dict:
    attach_head(model)
    return {}


def add_content_spans(variants: list[Variant]) -> None:
    """Gives each variant without an entity span the spans of its content words (pool `content`)."""
    bare = [v for v in variants if not v.spans]
    for v, spans in zip(bare, content_spans([v.text for v in bare]) if bare else [], strict=True):
        if spans:
            v.spans, v.pool = spans, "content"


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, loss_cfg: LossConfig) -> Job:
    """Every train post with its group (variants packed behind one prompt); a head on the model."""
    train_cfg = inputs.train
    posts, counts = build_posts(inputs.raw, inputs.groups, train_cfg.max_variants, loss_cfg.negatives)
    encoded, enc_counts = [], Counter()
    if loss_cfg.entity_pooling and loss_cfg.pool_fallback == "content":
        add_content_spans([v for p in posts if p.contrastive for v in p.variants])
    for p in tqdm(posts, desc="encode", leave=False):
        variants = p.variants
        if not loss_cfg.entity_pooling:
            variants = [Variant(v.text, v.positive) for v in variants]
        ex, c = encode(tok, inputs.model.prompt_template, p.post, variants, train_cfg.max_prompt_tokens,
                       train_cfg.max_summary_tokens, group_weight(p.toxicity, loss_cfg), p.contrastive)
        enc_counts.update(c)
        encoded.append(ex)
    if not any(e.contrastive for e in encoded):
        raise ValueError("no post has a valid contrastive group (>= 2 positives and >= 1 negative) among "
                         "the training posts; check data/augment/train/groups.parquet (dvc repro entity-perturb)")
    log.info("contrastive training on %d posts (%d with a group), scale=%s, negatives %s, pooling %s",
             len(encoded), counts["posts_contrastive"], loss_cfg.scale, ",".join(loss_cfg.negatives),
             loss_cfg.pool_position)
    weights = [e.weight for e in encoded if e.contrastive]
    return Job(
        encoded, counts | dict(sorted(enc_counts.items())),
        collator=partial(collate, packed=train_cfg.packing, pad_id=tok.pad_token_id, contrastive=True,
                         pool_position=loss_cfg.pool_position),
        trainer_kwargs={"loss_cfg": loss_cfg}, setup_model=_attach_head, logged=("ce", "l_cl", "w"), pieces=pieces,
        metrics={"scale": loss_cfg.scale, "w_posts_mean": sum(weights) / len(weights),
                 "negatives": ",".join(loss_cfg.negatives), "pool_position": loss_cfg.pool_position},
    )

"""What the contrastive groups give training, without training: posts with a group, entity pooling.

    python bench/group_yield.py [--raw data/raw/train.parquet] [--groups data/augment/train/groups.parquet]

Joins the groups with the train posts exactly as train@contrastive does (aligntax.train.groups)
and encodes every post with the base tokenizer (aligntax.train.packing), then prints the share of
posts with a valid group, the variants per kind, and how many variants fall back to pooling over
all their tokens because no entity span maps onto a token (CLIFF pools over entity tokens).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pandas as pd

from aligntax.config import load_section, read_params
from aligntax.models import ModelConfig, load_tokenizer
from aligntax.train.groups import build_posts
from aligntax.train.loss import LossConfig, group_weight
from aligntax.train.packing import encode
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", default="data/raw/train.parquet")
    p.add_argument("--groups", default="data/augment/train/groups.parquet")
    p.add_argument("--base-model", default="models/base")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--gains", default="1,4", help="loss.dynamic_gain values whose mean dynamic weight is printed")
    args = p.parse_args()
    params = read_params(args.params)
    train_cfg = load_section(params, "train", TrainConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    raw, groups = pd.read_parquet(args.raw), pd.read_parquet(args.groups)
    if train_cfg.n_posts:
        raw = raw.iloc[: train_cfg.n_posts]
    posts, counts = build_posts(raw, groups, train_cfg.max_variants)
    tok = load_tokenizer(args.base_model)
    fallback, variants = Counter(), Counter()
    for post in posts:
        for v in post.variants:
            _, c = encode(tok, template, post.post, [v], train_cfg.max_prompt_tokens, train_cfg.max_summary_tokens)
            key = ("positive" if v.positive else "negative") if post.contrastive else "no_group_reference"
            variants[key] += 1
            fallback[key] += c["pool_fallback"]
    n_var = sum(n for k, n in variants.items() if k != "no_group_reference")
    n_fb = sum(n for k, n in fallback.items() if k != "no_group_reference")
    n_contrastive = counts.get("posts_contrastive", 0)
    out = {
        "posts": len(posts), "posts_with_group": n_contrastive,
        "posts_with_group_share": round(n_contrastive / len(posts), 4) if posts else 0.0,
        "variants": dict(variants), "pool_fallback": dict(fallback),
        # train@contrastive's metric counts every encoded variant, incl. the references of posts without a group
        "pool_fallback_all": sum(fallback.values()), "variants_all": sum(variants.values()),
        "pool_fallback_share_group_variants": round(n_fb / n_var, 4) if n_var else 0.0,
        "pool_fallback_share_all": round(sum(fallback.values()) / sum(variants.values()), 4) if variants else 0.0,
        "rows_per_kind": dict(sorted(Counter(groups["kind"]).items())),
        # what loss.scale dynamic gives on these groups: compare with loss.static_weight
        "dynamic_w": {g: _weights([p.toxicity for p in posts if p.contrastive], float(g))
                      for g in args.gains.split(",")},
        "build_posts": counts,
    }
    print(json.dumps(out, indent=2))


def _weights(toxicity: list[list[float]], gain: float) -> dict[str, float]:
    cfg = LossConfig(scale="dynamic", dynamic_gain=gain)
    w = [group_weight(t, cfg) for t in toxicity]
    return {"mean": round(sum(w) / len(w), 3), "min": round(min(w), 3), "max": round(max(w), 3)} if w else {}


if __name__ == "__main__":
    main()

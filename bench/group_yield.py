"""What the contrastive groups give training, without training: posts with a group, entity pooling.

    python bench/group_yield.py [--raw data/raw/train.parquet] [--groups data/augment/train/groups.parquet]

Joins the groups with the train posts exactly as train@contrastive does (aligntax.train.groups)
and encodes every post with the base tokenizer (aligntax.train.packing), then prints the share of
posts with a valid group, the variants per kind (in the file and as training keeps them after its
`train.max_variants` cap), the entity negatives per post training keeps, and what each variant of a
group pools over: its entity tokens (CLIFF), its content words (`loss.pool_fallback: content`) or
all its tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligntax.config import load_section, read_params  # noqa: E402
from aligntax.models import ModelConfig, load_tokenizer  # noqa: E402
from aligntax.schema import ENTITY_KINDS  # noqa: E402
from aligntax.train.contrastive import add_content_spans  # noqa: E402
from aligntax.train.groups import build_posts  # noqa: E402
from aligntax.train.loss import LossConfig, group_weight  # noqa: E402
from aligntax.train.packing import encode  # noqa: E402
from aligntax.train.trainer import TrainConfig  # noqa: E402


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
    loss_cfg = load_section(params, "loss", LossConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    raw, groups = pd.read_parquet(args.raw), pd.read_parquet(args.groups)
    posts, counts = build_posts(raw, groups, train_cfg.max_variants)
    if loss_cfg.entity_pooling and loss_cfg.pool_fallback == "content":
        add_content_spans([v for p in posts if p.contrastive for v in p.variants])
    tok = load_tokenizer(args.base_model)
    pooled: dict[str, Counter] = {"positive": Counter(), "negative": Counter()}
    for post in posts:
        if not post.contrastive:
            continue
        for v in post.variants:
            _, c = encode(tok, template, post.post, [v], train_cfg.max_prompt_tokens, train_cfg.max_summary_tokens,
                          contrastive=True)
            pooled["positive" if v.positive else "negative"].update({k: n for k, n in c.items() if k.startswith("pool")})
    total = pooled["positive"] + pooled["negative"]
    n_var = sum(total.values())
    n_contrastive = counts.get("posts_contrastive", 0)
    out = {
        "posts": len(posts), "posts_with_group": n_contrastive,
        "posts_with_group_share": round(n_contrastive / len(posts), 4) if posts else 0.0,
        "group_variants": n_var, "pooled": {k: dict(v) for k, v in pooled.items()},
        "pool_shares": {k: round(n / n_var, 4) for k, n in sorted(total.items())} if n_var else {},
        "rows_per_kind": dict(sorted(Counter(groups["kind"]).items())),
        **_after_cap(posts, groups),
        # what loss.scale dynamic gives on these groups: compare with loss.static_weight
        "dynamic_w": {g: _weights([p.toxicity for p in posts if p.contrastive], float(g))
                      for g in args.gains.split(",")},
        "build_posts": counts,
    }
    print(json.dumps(out, indent=2))


def _after_cap(posts: list, groups: pd.DataFrame) -> dict:
    """Negatives per kind that training keeps, and its entity negatives per post (histogram, posts with >= 2)."""
    kind_of = {(r.post_id, r.text.strip()): r.kind for r in groups.itertuples() if r.role == "negative"}
    kinds: Counter = Counter()
    per_post: Counter = Counter()
    for post in posts:
        if post.contrastive:
            kept = [kind_of[(post.post_id, v.text)] for v in post.variants if not v.positive]
            kinds.update(kept)
            per_post[sum(k in ENTITY_KINDS for k in kept)] += 1
    return {"train_negatives_per_kind": dict(sorted(kinds.items())),
            "train_entity_negatives_per_post": {str(n): c for n, c in sorted(per_post.items())},
            "train_posts_with_2_or_more_entity_negatives": sum(c for n, c in per_post.items() if n >= 2)}


def _weights(toxicity: list[list[float]], gain: float) -> dict[str, float]:
    cfg = LossConfig(scale="dynamic", dynamic_gain=gain)
    w = [group_weight(t, cfg) for t in toxicity]
    return {"mean": round(sum(w) / len(w), 3), "min": round(min(w), 3), "max": round(max(w), 3)} if w else {}


if __name__ == "__main__":
    main()

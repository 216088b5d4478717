"""Reference summaries and their negatives from the groups artifact: the data of DPO and unlikelihood.

Both baselines learn from the same contrast the contrastive method uses: the post's reference
summary (chosen / MLE target) against its toxic and unfaithful rewrites (rejected / unlikely).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aligntax.config import check
from aligntax.schema import NEGATIVE_KINDS


def check_kinds(kinds: list[str], key: str) -> None:
    """``kinds`` must be a non-empty subset of the groups artifact's negative kinds."""
    check(len(kinds) > 0 and set(kinds) <= set(NEGATIVE_KINDS), key, f"a non-empty subset of {list(NEGATIVE_KINDS)}")


def negatives_by_post(
    raw: pd.DataFrame, groups: pd.DataFrame, kinds: list[str], max_per_post: int, seed: int
) -> tuple[pd.DataFrame, dict]:
    """One row per (post, negative): post_id, post, reference, negative, kind; and row accounting.

    Posts keep the order of ``raw`` (RAW schema: id, post, summary); the reference is the raw
    summary (what `sft` trains on). Per post at most ``max_per_post`` negatives of ``kinds``
    are kept, a seeded sample; negatives equal to the reference are dropped.
    """
    neg = groups[(groups["role"] == "negative") & groups["kind"].isin(kinds)]
    by_post = {pid: df for pid, df in neg.groupby("post_id", sort=False)}
    rng = np.random.default_rng(seed)
    rows = []
    stats = {"posts_read": len(raw), "posts_without_negatives": 0, "negatives_read": len(neg),
             "dropped_same_as_reference": 0, "dropped_over_max_per_post": 0}
    for pid, post, reference in zip(raw["id"], raw["post"], raw["summary"], strict=True):
        cands = by_post.get(pid)
        if cands is None:
            stats["posts_without_negatives"] += 1
            continue
        same = cands["text"].str.strip() == reference.strip()
        stats["dropped_same_as_reference"] += int(same.sum())
        cands = cands[~same]
        if cands.empty:
            stats["posts_without_negatives"] += 1
            continue
        order = rng.permutation(len(cands))[:max_per_post]
        stats["dropped_over_max_per_post"] += len(cands) - len(order)
        for i in sorted(order):
            c = cands.iloc[i]
            rows.append({"post_id": pid, "post": post, "reference": reference, "negative": c["text"],
                         "kind": c["kind"]})
    out = pd.DataFrame(rows, columns=["post_id", "post", "reference", "negative", "kind"])
    stats["posts_kept"] = int(out["post_id"].nunique())
    stats["pairs"] = len(out)
    stats["pairs_by_kind"] = {k: int(v) for k, v in out["kind"].value_counts().sort_index().items()}
    return out, stats

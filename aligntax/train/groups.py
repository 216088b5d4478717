"""Join the train posts with their contrastive groups, applying the bad-input rules with counts.

Every post of data/raw/train.parquet is trained with CE on its reference summary; a post also
gets the contrastive term when its group has >= 2 positives (the reference counts) and >= 1
negative. Rules: rows for unknown posts are dropped; a group reference row whose text is not
the raw reference is ignored (the raw reference is the CE target); invalid entity spans are
dropped (the variant then pools over all its tokens); NaN toxicity is ignored by the weight;
variants beyond ``max_variants`` are dropped keeping the positive/negative mix; negatives of a
kind outside ``negatives`` (`loss.negatives`) are left out, and a post whose every negative is
left out that way trains with CE only (counted as posts_negatives_excluded).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from aligntax.train.packing import Variant


@dataclass
class Post:
    post_id: str
    """Id of the post in data/raw/train.parquet."""
    post: str
    """The post text."""
    variants: list[Variant]
    """Variant 0 is the reference; the others are the group's positives then negatives."""
    toxicity: list[float]
    """Toxicity score per variant (NaN when unknown)."""
    contrastive: bool
    """Whether the group is valid for InfoNCE."""


def _spans(value, text: str, counts: Counter) -> list[tuple[int, int]]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    spans = []
    for span in value:
        start, end = span.get("start"), span.get("end")
        if start is None or end is None or not 0 <= start < end <= len(text):
            counts["invalid_entity_span"] += 1
            continue
        spans.append((int(start), int(end)))
    return spans


def _tox(value) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def build_posts(
    raw: pd.DataFrame, groups: pd.DataFrame | None, max_variants: int, negatives: Collection[str] | None = None,
) -> tuple[list[Post], dict]:
    """One Post per raw row (in raw order) and the row accounting of the groups file.

    ``negatives``: the kinds of negatives kept (None: all). Every post lands in exactly one of
    posts_contrastive, posts_without_group, posts_too_few_positives, posts_without_negative and
    posts_negatives_excluded.
    """
    counts: Counter = Counter({k: 0 for k in ("posts_contrastive", "posts_without_group", "posts_too_few_positives",
                                              "posts_without_negative")})
    if negatives is not None:
        counts.update({"negatives_excluded": 0, "posts_negatives_excluded": 0})
    by_post: dict[str, list[dict]] = {}
    if groups is not None:
        known = set(raw["id"])
        for row in groups.to_dict("records"):
            if row["post_id"] not in known:
                counts["group_rows_unknown_post"] += 1
                continue
            by_post.setdefault(row["post_id"], []).append(row)
        counts["group_rows_read"] = len(groups)
    posts = []
    for rec in raw.to_dict("records"):
        ref_text = rec["summary"].strip()
        ref = Variant(ref_text, True)
        ref_tox = float("nan")
        positives, kept_negatives, excluded = [], [], 0
        for row in by_post.get(rec["id"], []):
            text = row["text"].strip()
            spans = _spans(row["entity_spans"], text, counts)
            if row["kind"] == "reference":
                if text == ref_text:
                    ref.spans, ref_tox = spans, _tox(row["toxicity"])
                else:
                    counts["group_reference_mismatch"] += 1
                continue
            if row["role"] != "positive" and negatives is not None and row["kind"] not in negatives:
                counts["negatives_excluded"] += 1
                excluded += 1
                continue
            if math.isnan(_tox(row["toxicity"])):
                counts["nan_toxicity"] += 1
            target = positives if row["role"] == "positive" else kept_negatives
            target.append((Variant(text, row["role"] == "positive", spans), _tox(row["toxicity"])))
        n_pos_keep = min(len(positives), max(1, max_variants // 2 - 1))
        n_neg_keep = min(len(kept_negatives), max_variants - 1 - n_pos_keep)
        n_pos_keep = min(len(positives), max_variants - 1 - n_neg_keep)
        counts["variants_capped"] += len(positives) + len(kept_negatives) - n_pos_keep - n_neg_keep
        kept = positives[:n_pos_keep] + kept_negatives[:n_neg_keep]
        contrastive = n_pos_keep >= 1 and n_neg_keep >= 1
        if rec["id"] not in by_post:
            counts["posts_without_group"] += 1
        elif n_pos_keep < 1:
            counts["posts_too_few_positives"] += 1
        elif n_neg_keep < 1:
            counts["posts_negatives_excluded" if excluded else "posts_without_negative"] += 1
        if not contrastive:
            kept = []
        counts["posts_contrastive"] += int(contrastive)
        posts.append(Post(rec["id"], rec["post"], [ref] + [v for v, _ in kept], [ref_tox] + [t for _, t in kept],
                          contrastive))
    counts["posts"] = len(posts)
    return posts, dict(sorted(counts.items()))

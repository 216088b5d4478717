"""Validation of the scorers against human labels on the held-out part (metrics/scorers.json).

Per group (overall and per source): rows, positives, ROC-AUC, balanced accuracy at the configured
threshold and throughput (texts or pairs per second, model loading excluded). The entity-swap
test scores each held-out TL;DR summary and its swapped copy against the post; pairwise accuracy
is the share where the original scores higher (ties count one half).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from aligntax.scoring.faithfulness import load_faithfulness_scorer
from aligntax.scoring.fit import entity_swaps
from aligntax.scoring.toxicity import load_toxicity_scorer

log = logging.getLogger(__name__)


def binary_metrics(y: np.ndarray, scores: np.ndarray, threshold: float, seconds: float) -> dict:
    """ROC-AUC (None if one class only), balanced accuracy at ``threshold``, items per second."""
    y = np.asarray(y, dtype=int)
    two = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "roc_auc": round(float(roc_auc_score(y, scores)), 4) if two else None,
        "balanced_accuracy": round(float(balanced_accuracy_score(y, scores >= threshold)), 4) if two else None,
        "per_s": round(len(y) / seconds, 1) if seconds > 0 else None,
    }


def by_group(df: pd.DataFrame, group: str, label: str, score: Callable[[pd.DataFrame], np.ndarray],
             threshold: float) -> dict:
    """Score each group separately (timed), then metrics per group and overall."""
    parts, out, total_s = [], {}, 0.0
    for key, part in df.groupby(group, sort=True):
        start = time.perf_counter()
        s = score(part)
        seconds = time.perf_counter() - start
        total_s += seconds
        parts.append((part[label].to_numpy(), s))
        out[str(key)] = binary_metrics(part[label].to_numpy(), s, threshold, seconds)
    y = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    return {"overall": binary_metrics(y, s, threshold, total_s), "by_source": out}


def swap_test(score: Callable[[list[str], list[str]], np.ndarray], posts: list[str], swaps: pd.DataFrame) -> dict:
    """Pairwise accuracy of faithful vs entity-swapped summaries, overall and per entity type."""
    if swaps.empty:
        return {"n_pairs": 0, "pairwise_accuracy": None}
    src = [posts[i] for i in swaps["index"]]
    start = time.perf_counter()
    good = score(src, swaps["summary"].tolist())
    bad = score(src, swaps["swapped"].tolist())
    seconds = time.perf_counter() - start
    win = np.where(good > bad, 1.0, np.where(good == bad, 0.5, 0.0))
    per_type = {str(k): {"n_pairs": int(len(v)), "pairwise_accuracy": round(float(win[v.index].mean()), 4)}
                for k, v in swaps.reset_index(drop=True).groupby("label", sort=True)}
    return {
        "n_pairs": int(len(swaps)),
        "pairwise_accuracy": round(float(win.mean()), 4),
        "tie_rate": round(float((good == bad).mean()), 4),
        "pairs_per_s": round(2 * len(swaps) / seconds, 1) if seconds > 0 else None,
        "by_entity_type": per_type,
    }


def validate_scorers(cfg, scorer_dir, ner, seed: int, tox: pd.DataFrame, frank: pd.DataFrame,
                     tldr: pd.DataFrame, split: dict) -> dict:
    """Metrics of the configured scorers (and the unfitted offline baselines) on the held-out ids."""
    tox_held = tox[tox["id"].astype(str).isin(set(split["toxicity_heldout"]))].sort_values("id")
    frank_held = frank[frank["id"].astype(str).isin(set(split["faithfulness_heldout"]))].sort_values("id")
    tldr_held = tldr[tldr["id"].astype(str).isin(set(split["tldr_heldout"]))].sort_values("id")
    posts = tldr_held["post"].tolist()
    swaps = entity_swaps(posts, tldr_held["summary"].tolist(), ner, seed)

    out = {"rows": {
        "toxicity": {"read": int(len(tox)), "heldout": int(len(tox_held)),
                     "dropped_fit_part": int(len(tox) - len(tox_held))},
        "faithfulness": {"read": int(len(frank)), "heldout": int(len(frank_held)),
                         "dropped_fit_part": int(len(frank) - len(frank_held))},
        "tldr_swap": {"read": int(len(tldr)), "heldout_posts": int(len(tldr_held)), "pairs": int(len(swaps)),
                      "dropped_no_swappable_entity": int(len(tldr_held) - len(swaps))},
    }}

    tox_backends = [cfg.toxicity.backend] + [b for b in ("bilstm", "profanity-check") if b != cfg.toxicity.backend]
    out["toxicity"] = {}
    for backend in tox_backends:
        bcfg = replace(cfg.toxicity, backend=backend)
        start = time.perf_counter()
        scorer = load_toxicity_scorer(bcfg, scorer_dir)
        load_s = time.perf_counter() - start
        res = by_group(tox_held, "source", "toxic", lambda part, s=scorer: s.score(part["text"].tolist()),
                       bcfg.threshold)
        out["toxicity"][backend] = {"threshold": bcfg.threshold, "load_s": round(load_s, 2), **res}
        log.info("toxicity %s: %s", backend, res["overall"])

    faith_backends = [cfg.faithfulness.backend] + [b for b in ("overlap",) if b != cfg.faithfulness.backend]
    out["faithfulness"] = {}
    for backend in faith_backends:
        bcfg = replace(cfg.faithfulness, backend=backend)
        start = time.perf_counter()
        scorer = load_faithfulness_scorer(bcfg, scorer_dir, ner)
        load_s = time.perf_counter() - start
        res = by_group(frank_held, "dataset", "label",
                       lambda part, s=scorer: s.score(part["document"].tolist(), part["summary"].tolist()),
                       bcfg.threshold)
        res["entity_swap"] = swap_test(scorer.score, posts, swaps)
        out["faithfulness"][backend] = {"threshold": bcfg.threshold, "load_s": round(load_s, 2), **res}
        log.info("faithfulness %s: %s, swap %s", backend, res["overall"], res["entity_swap"]["pairwise_accuracy"])
    return out

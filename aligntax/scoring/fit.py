"""Fitting the offline heads on one seeded part of the labelled samples (the rest is held out).

- toxicity: ``toxicity_sample.jsonl`` split in two, stratified by source x label;
- faithfulness: FRANK (``faithfulness_sample.jsonl``) split the same way by dataset x label, plus
  FactCC-style synthetic pairs from the fit part of the TL;DR sample (the author's summary as a
  positive, the same summary with one entity swapped for a same-type entity of the post as a
  negative). Validation reports only on the held-out ids, written to ``split.json``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from aligntax import io
from aligntax.config import check
from aligntax.ner import Ner
from aligntax.scoring.faithfulness import OverlapScorer
from aligntax.scoring.head import FAITHFULNESS_HEAD, TOXICITY_HEAD, LinearHead
from aligntax.scoring.overlap import FEATURES
from aligntax.scoring.toxicity import ToxicityFeatures

log = logging.getLogger(__name__)
GROUP_SCALE = 10.0

COLUMNS = {
    "toxicity": ("id", "text", "toxic", "source"),
    "faithfulness": ("id", "document", "summary", "label", "dataset"),
    "tldr": ("id", "post", "summary"),
}


@dataclass
class FitConfig:
    holdout: float = 0.5
    """Share of each labelled sample held out for validation (stratified, seeded)."""
    c_grid: list[float] = field(default_factory=lambda: [0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    """Inverse L2 strengths tried for each logistic head; chosen by 5-fold CV on the fit part."""
    synthetic_weight: float = 1.0
    """Faithfulness: total weight of the synthetic TL;DR pairs relative to the FRANK fit rows."""

    def __post_init__(self) -> None:
        check(0.1 <= self.holdout <= 0.9, "scoring.fit.holdout", "a number in [0.1, 0.9]")
        check(len(self.c_grid) >= 1 and all(c > 0 for c in self.c_grid), "scoring.fit.c_grid", "positive numbers")
        check(self.synthetic_weight >= 0, "scoring.fit.synthetic_weight", "a number >= 0")


def read_jsonl(path: str | Path, kind: str) -> pd.DataFrame:
    """A labelled sample with its required columns checked (one clear error otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labelled sample not found; it is committed under data/sample/")
    df = io.read_jsonl(path)
    missing = [c for c in COLUMNS[kind] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: column '{missing[0]}' missing; expected {', '.join(COLUMNS[kind])}")
    return df


def split_ids(ids: pd.Series, strata: pd.Series, holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(fit ids, held-out ids): within each stratum a seeded shuffle, the last ``holdout`` share held out."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for key in sorted(strata.unique()):
        members = sorted(ids[strata == key])
        order = rng.permutation(len(members))
        n_held = int(round(holdout * len(members)))
        held += [members[i] for i in order[:n_held]]
        fit += [members[i] for i in order[n_held:]]
    return sorted(fit), sorted(held)


def fit_head(x: np.ndarray, y: np.ndarray, features: list[str], cfg: FitConfig, seed: int,
             weight: np.ndarray | None = None, groups: np.ndarray | None = None) -> tuple[LinearHead, dict]:
    """Standardise + logistic regression; C picked by 5-fold CV ROC-AUC on the fit rows (fewer folds
    for a tiny sample), then the
    slope's scale recalibrated without penalty (Platt) so that 0.5 is a meaningful threshold.

    With ``groups`` (e.g. FRANK CNN/DM, FRANK BBC, synthetic TL;DR), each group gets its own
    intercept while fitting, so the slopes learn what separates labels *within* a group rather
    than which group a row came from (XSum is 92% inconsistent and far more abstractive than
    CNN/DM); the stored intercept is the mean of the group intercepts.
    """
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    names = sorted(set(groups)) if groups is not None else []
    # Group columns are scaled up so the L2 penalty barely touches the group intercepts.
    onehot = GROUP_SCALE * np.stack([groups == g for g in names], axis=1) if names else np.zeros((len(y), 0))
    zg = np.concatenate([z, onehot], axis=1)
    strata = y if groups is None else np.array([f"{g}/{v}" for g, v in zip(groups, y, strict=True)])
    if np.unique(strata, return_counts=True)[1].min() < 2:
        strata = y  # a tiny group: stratify by label only
    n_splits = int(min(5, np.unique(strata, return_counts=True)[1].min()))
    if n_splits < 2:
        raise ValueError(f"too few rows to fit a scorer head: {int(y.sum())} positive of {len(y)}")
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(zg, strata))
    cv = {}
    for c in cfg.c_grid:
        pred = np.zeros(len(y))
        for tr, te in folds:
            clf = LogisticRegression(C=c, max_iter=5000, fit_intercept=not names)
            clf.fit(zg[tr], y[tr], sample_weight=None if weight is None else weight[tr])
            pred[te] = clf.decision_function(zg[te])
        cv[c] = float(np.mean([roc_auc_score(y[groups == g], pred[groups == g]) for g in names
                               if len(set(y[groups == g])) == 2]) if names else roc_auc_score(y, pred))
    best = max(cv, key=lambda c: (cv[c], -c))
    clf = LogisticRegression(C=best, max_iter=5000, fit_intercept=not names).fit(zg, y, sample_weight=weight)
    direction = clf.coef_[0][: len(features)]
    # Platt step: strong L2 shrinks the slope, so refit its scale (and the intercepts) unpenalised.
    platt = np.concatenate([(z @ direction)[:, None], onehot / GROUP_SCALE], axis=1)
    cal = LogisticRegression(C=1e6, max_iter=5000, fit_intercept=not names).fit(platt, y, sample_weight=weight)
    coef = direction * cal.coef_[0][0]
    group_icpt = cal.coef_[0][1:]
    intercept = float(group_icpt.mean()) if names else float(cal.intercept_[0])
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    head = LinearHead(scaler.mean_, scale, coef, intercept, features,
                      {"C": best, "cv_roc_auc": cv[best], "n_fit": int(len(y)), "groups": names})
    log.info("head fitted: C=%s, 5-fold CV ROC-AUC %.3f on %d rows", best, cv[best], len(y))
    info = {"C": best, "cv_roc_auc": {str(k): round(v, 4) for k, v in cv.items()}, "n_fit": int(len(y))}
    if names:
        info["cv_is"] = "mean of per-group ROC-AUC"
        info["group_intercepts"] = dict(zip(names, np.round(group_icpt, 4).tolist(), strict=True))
    return head, info


def entity_swaps(posts: list[str], summaries: list[str], ner: Ner, seed: int) -> pd.DataFrame:
    """One swap per summary where possible: a summary entity that occurs in the post replaced by a
    different same-type entity that also occurs in the post.

    Columns: index (into the inputs), summary, swapped, label, original, replacement."""
    rng = np.random.default_rng(seed)
    # the original must occur in the post too, so entity presence cannot tell them apart; only the
    # posts that have such an entity are read by the NER (most summaries name none: ~6x less NER)
    present = [[e for e in ents if re.search(rf"(?<!\w){re.escape(e.text.lower().strip())}(?!\w)", post.lower())]
               for post, ents in zip(posts, ner.entities(summaries), strict=True)]
    wanted = [i for i, ents in enumerate(present) if ents]
    post_ents = dict(zip(wanted, ner.entities([posts[i] for i in wanted]), strict=True))
    rows = []
    for i in wanted:
        summary, p_ents = summaries[i], post_ents[i]
        options = []
        for e in present[i]:
            norm = e.text.lower().strip()
            cands = sorted({p.text.strip() for p in p_ents if p.label == e.label and p.text.lower().strip() != norm
                            and norm not in p.text.lower() and p.text.lower().strip() not in norm})
            options += [(e, c) for c in cands]
        if not options:
            continue
        e, cand = options[rng.integers(len(options))]
        swapped = summary[: e.start] + cand + summary[e.end :]
        rows.append({"index": i, "summary": summary, "swapped": swapped, "label": e.label,
                     "original": e.text, "replacement": cand})
    return pd.DataFrame(rows, columns=["index", "summary", "swapped", "label", "original", "replacement"])


def write_split(folder: Path, split: dict[str, list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "split.json").write_text(json.dumps(split, indent=1) + "\n")


def read_split(folder: Path) -> dict[str, list[str]]:
    path = Path(folder) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: held-out split not found; run `dvc repro fit-scorers`")
    return json.loads(path.read_text())


def split_all(tox: pd.DataFrame, frank: pd.DataFrame, tldr: pd.DataFrame, holdout: float, seed: int) -> dict:
    """Seeded fit / held-out ids of the three samples (toxicity by source x label, FRANK by dataset x label)."""
    split = {}
    for name, df, strata in (
        ("toxicity", tox, tox["source"].astype(str) + "/" + tox["toxic"].astype(str)),
        ("faithfulness", frank, frank["dataset"].astype(str) + "/" + frank["label"].astype(str)),
        ("tldr", tldr, pd.Series("all", index=tldr.index)),
    ):
        fit, held = split_ids(df["id"].astype(str), strata, holdout, seed)
        split[f"{name}_fit"], split[f"{name}_heldout"] = fit, held
    return split


def fit_scorers(cfg, ner: Ner, seed: int, tox: pd.DataFrame, frank: pd.DataFrame, tldr: pd.DataFrame,
                out_dir: Path) -> dict:
    """Fit both heads on the fit parts; write heads + split.json into ``out_dir``; return metrics."""
    split = split_all(tox, frank, tldr, cfg.fit.holdout, seed)
    tox_fit = tox[tox["id"].astype(str).isin(set(split["toxicity_fit"]))].sort_values("id")
    feats = ToxicityFeatures(cfg.toxicity)
    tox_head, tox_info = fit_head(feats(tox_fit["text"].tolist()), tox_fit["toxic"].to_numpy(int),
                                  feats.names(), cfg.fit, seed)

    frank_fit = frank[frank["id"].astype(str).isin(set(split["faithfulness_fit"]))].sort_values("id")
    tldr_fit = tldr[tldr["id"].astype(str).isin(set(split["tldr_fit"]))].sort_values("id")
    posts = tldr_fit["post"].tolist()
    swaps = entity_swaps(posts, tldr_fit["summary"].tolist(), ner, seed)
    overlap = OverlapScorer(cfg.faithfulness, ner)
    src = frank_fit["document"].tolist() + [posts[i] for i in swaps["index"]] * 2
    summ = frank_fit["summary"].tolist() + swaps["summary"].tolist() + swaps["swapped"].tolist()
    y = np.concatenate([frank_fit["label"].to_numpy(int), np.ones(len(swaps), int), np.zeros(len(swaps), int)])
    n_syn = 2 * len(swaps)
    w = np.concatenate([np.ones(len(frank_fit)),
                        np.full(n_syn, cfg.fit.synthetic_weight * len(frank_fit) / max(n_syn, 1))])
    groups = np.array([f"frank_{d}" for d in frank_fit["dataset"]] + ["tldr_swap"] * n_syn)
    faith_head, faith_info = fit_head(overlap.features(src, summ), y, list(FEATURES), cfg.fit, seed, weight=w,
                                      groups=groups)
    faith_info["coef"] = dict(zip(FEATURES, np.round(faith_head.coef, 4).tolist(), strict=True))

    out_dir.mkdir(parents=True, exist_ok=True)
    tox_head.save(out_dir, TOXICITY_HEAD)
    faith_head.save(out_dir, FAITHFULNESS_HEAD)
    write_split(out_dir, split)
    return {
        "rows": {
            "toxicity": {"read": int(len(tox)), "fit": int(len(tox_fit)), "heldout": len(split["toxicity_heldout"])},
            "faithfulness": {"read": int(len(frank)), "fit": int(len(frank_fit)),
                             "heldout": len(split["faithfulness_heldout"])},
            "tldr": {"read": int(len(tldr)), "fit_posts": int(len(tldr_fit)), "swap_pairs": int(len(swaps)),
                     "dropped_no_swappable_entity": int(len(tldr_fit) - len(swaps)),
                     "heldout_posts": len(split["tldr_heldout"])},
        },
        "toxicity_head": tox_info,
        "faithfulness_head": faith_info,
    }

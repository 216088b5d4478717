"""The likelihood rows of the comparison: preferences per negative kind and per axis, the references'
own likelihood, and the per-seed rows.

Preferences (data/eval/<run>/preferences.parquet, one row per pair) are reported in two units,
``token`` (margin_mean, nats/token: the report's headline) and ``sum`` (margin_sum, nats: in
metrics/compare.json), whatever `evaluate.preference` chose for the evaluate metrics. The unit of
a row is a negative kind of an axis, per post the mean over its pairs of that kind; a kind's value
is the mean over the posts that have it. An axis is the equal-weight mean of its kinds that have
at least ``compare.min_posts`` posts (the row names them), never a mean whose mix of kinds changes
from post to post. Accuracy: the share of a post's pairs of the kind with margin > 0, averaged the
same way. A kind with fewer posts gets its row with its n and "too few" (no CI, not in its axis);
a kind a method lacks gets a row naming the run that lacks it.

Likelihood (data/eval/<run>/likelihoods.parquet): per post the reference's log-probability per
token (logprob_sum / n_tokens), and the mean of that over the post's positives (the reference and
its paraphrases); Δ vs the reference method is paired over posts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aligntax.evaluate.metrics import MetricsConfig
from aligntax.evaluate.preference import AXES, PAIR_AXES
from aligntax.methods import Run
from aligntax.report import stats
from aligntax.report.compare import CompareConfig, delta_columns, score_frames

UNITS = {"token": "margin_mean", "sum": "margin_sum"}
"""Unit of a preference row -> its margin column in preferences.parquet."""
LIKELIHOOD = ("reference", "positives")


def kinds_of(axis: str, prefs: dict[str, pd.DataFrame]) -> list[str]:
    """Every negative kind of ``axis`` in any run, known kinds first in the order of ``AXES``."""
    found = {k for p in prefs.values() for k in p.loc[p["axis"] == axis, "kind"].unique()}
    known = [k for kinds in AXES.values() for k in kinds if k in found]
    return known + sorted(found - set(known))


def frames(pairs: pd.DataFrame, axis: str, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(margin, accuracy) per post x kind of one run's ``axis`` pairs: the means over each post's pairs."""
    sub = pairs[pairs["axis"] == axis].assign(win=lambda d: (d[column] > 0).astype(np.float64))
    grouped = sub.groupby(["post_id", "kind"])
    return grouped[column].mean().unstack("kind"), grouped["win"].mean().unstack("kind")


def reason(metrics: dict[str, Any]) -> str:
    """Why a run has no preference rows (from its evaluate metrics)."""
    info = metrics.get("preference")
    return "not scored (no --groups)" if info is None else f"not applicable: {info.get('reason', '')}"


class Preferences:
    """Every run's per-post frames, aligned on the union of posts that any run scored."""

    def __init__(self, runs: dict[str, list[Run]], prefs: dict[str, pd.DataFrame]) -> None:
        self.runs = runs
        self.prefs = prefs
        self.posts = pd.Index(sorted({p for frame in prefs.values() for p in frame["post_id"]}))
        self.kinds = {axis: kinds_of(axis, prefs) for axis in PAIR_AXES}
        self.cells = {(run, axis, unit): frames(frame, axis, col)
                      for run, frame in prefs.items() for axis in PAIR_AXES for unit, col in UNITS.items()}

    def scored(self, method: str) -> bool:
        return all(r.name in self.prefs for r in self.runs[method])

    def side(self, method: str, axis: str, unit: str, kinds: list[str], accuracy: bool = False,
             runs: list[Run] | None = None) -> stats.Side:
        return stats.stack([self.cells[(r.name, axis, unit)][int(accuracy)] for r in runs or self.runs[method]],
                           self.posts, kinds)

    def lacking(self, method: str, axis: str, kind: str) -> str | None:
        """The first run of ``method`` without pairs of ``kind`` on ``axis``, else None."""
        return next((r.name for r in self.runs[method]
                     if kind not in self.cells[(r.name, axis, "token")][0].columns), None)

    def counts(self, method: str, axis: str, kind: str) -> tuple[int, int]:
        """(pairs, posts) of ``kind`` on ``axis`` in the method's first run."""
        p = self.prefs[self.runs[method][0].name]
        sub = p[(p["axis"] == axis) & (p["kind"] == kind)]
        return len(sub), int(sub["post_id"].nunique())


def _row(pref: Preferences, method: str, axis: str, unit: str, kinds: list[str]) -> dict[str, Any]:
    own = pref.side(method, axis, unit, kinds)
    return {"margin": stats.estimate(own), "accuracy": stats.estimate(pref.side(method, axis, unit, kinds, True))}


def preference_rows(runs: dict[str, list[Run]], metrics: dict[str, dict], prefs: dict[str, pd.DataFrame],
                    cfg: CompareConfig, boot: MetricsConfig, seed: int) -> pd.DataFrame:
    """One row per (method, axis, kind or "" for the axis, unit): pairs, posts, accuracy, mean margin and
    the Δ margin vs the reference (CI, SE, MDE, p, n) or a note (reference, too few, missing, not scored)."""
    if not prefs:
        return pd.DataFrame(columns=["method", "axis", "kind", "unit", "note"])
    pref, ref = Preferences(runs, prefs), cfg.reference
    rows: list[dict[str, Any]] = []
    for method in runs:
        if not pref.scored(method):
            missing = next(r.name for r in runs[method] if r.name not in prefs)
            rows.append({"method": method, "axis": "all", "kind": "", "unit": "token",
                         "note": f"`{missing}`: {reason(metrics[missing])}"})
            continue
        for axis in PAIR_AXES:
            for unit in UNITS:
                rows += axis_rows(pref, method, axis, unit, cfg, boot, seed)
    out = pd.DataFrame(rows)
    if ref not in prefs:
        out.loc[(out["method"] != ref) & (out["axis"] != "all") & (out["note"] == ""), "note"] = \
            f"reference `{ref}` has no preferences"
    return out


def axis_rows(pref: Preferences, method: str, axis: str, unit: str, cfg: CompareConfig, boot: MetricsConfig,
              seed: int) -> list[dict[str, Any]]:
    """The kind rows of one method, axis and unit, then the axis row (equal weight over the kinds with a CI)."""
    ref, rows, included, left_out = cfg.reference, [], [], []
    ref_scored = ref in pref.runs and pref.scored(ref)
    for kind in pref.kinds[axis]:
        pairs, posts = pref.counts(method, axis, kind) if pref.lacking(method, axis, kind) is None else (0, 0)
        row: dict[str, Any] = {"method": method, "axis": axis, "kind": kind, "unit": unit, "pairs": pairs,
                               "posts": posts, "note": ""}
        lacking = pref.lacking(method, axis, kind)
        if lacking is not None:
            rows.append({**row, "note": f"missing: `{lacking}` has no {kind} pairs"})
            left_out.append(f"{kind} (missing)")
            continue
        row.update(_row(pref, method, axis, unit, [kind]))
        if method == ref or not ref_scored:
            if posts < cfg.min_posts:
                row["note"] = f"too few: {posts} posts (< {cfg.min_posts})"
                left_out.append(f"{kind} (too few)")
            else:
                row["note"] = "reference" if method == ref else ""
                included.append(kind)
            rows.append(row)
            continue
        ref_lacking = pref.lacking(ref, axis, kind)
        if ref_lacking is not None:
            rows.append({**row, "note": f"missing: reference `{ref_lacking}` has no {kind} pairs"})
            left_out.append(f"{kind} (missing in {ref})")
            continue
        own, other = pref.side(method, axis, unit, [kind]), pref.side(ref, axis, unit, [kind])
        common = stats.posts_used(own, other)
        if common < cfg.min_posts:
            row["note"] = f"too few: {common} posts (< {cfg.min_posts})"
            row["d_margin"] = stats.estimate(own, other)
            left_out.append(f"{kind} (too few)")
        else:
            row.update(delta_columns("d_margin", stats.delta(own, other, boot.n_boot, boot.confidence, seed)))
            included.append(kind)
        rows.append(row)
    axis_row: dict[str, Any] = {"method": method, "axis": axis, "kind": "", "unit": unit, "kinds": included,
                                "note": ("reference" if method == ref else "")}
    if left_out:
        axis_row["note"] = "; ".join(filter(None, [axis_row["note"], "without " + ", ".join(left_out)]))
    if not included:
        return [*rows, {**axis_row, "note": "no kind with enough posts", "pairs": 0, "posts": 0}]
    kind_rows = [r for r in rows if r["kind"] in included]
    axis_row["pairs"] = sum(r["pairs"] for r in kind_rows)
    axis_row["posts"] = stats.posts_used(pref.side(method, axis, unit, included))
    axis_row.update(_row(pref, method, axis, unit, included))
    if method != ref and ref_scored:
        axis_row.update(delta_columns("d_margin", stats.delta(
            pref.side(method, axis, unit, included), pref.side(ref, axis, unit, included), boot.n_boot,
            boot.confidence, seed)))
    return [*rows, axis_row]


def likelihood_frames(likes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per post: the reference's log-prob per token, and the mean of it over the post's positives."""
    lp = likes.assign(lp=likes["logprob_sum"] / likes["n_tokens"])
    return {"reference": lp[lp["kind"] == "reference"].groupby("post_id")[["lp"]].mean(),
            "positives": lp[lp["role"] == "positive"].groupby("post_id")[["lp"]].mean()}


def likelihood_rows(runs: dict[str, list[Run]], metrics: dict[str, dict], likes: dict[str, pd.DataFrame],
                    cfg: CompareConfig, boot: MetricsConfig, seed: int) -> pd.DataFrame:
    """One row per method: posts, mean log-prob per token of the references and of the positives
    (seed means), and their Δ vs the reference (paired over posts, CI, SE, MDE, p)."""
    if not likes:
        return pd.DataFrame(columns=["method", "note"])
    per_run = {run: likelihood_frames(frame) for run, frame in likes.items()}
    posts = pd.Index(sorted({p for f in per_run.values() for p in f["reference"].index}))

    def side(method: str, what: str) -> stats.Side:
        return stats.stack([per_run[r.name][what].rename(columns={"lp": what}) for r in runs[method]], posts, [what])

    ref = cfg.reference
    rows = []
    for method, method_runs in runs.items():
        missing = next((r.name for r in method_runs if r.name not in likes), None)
        if missing is not None:
            rows.append({"method": method, "note": f"`{missing}`: {reason(metrics[missing])}"})
            continue
        row: dict[str, Any] = {"method": method, "note": "reference" if method == ref else "",
                               "posts": stats.posts_used(side(method, "reference"))}
        for what in LIKELIHOOD:
            own = side(method, what)
            row[what] = stats.estimate(own)
            if method != ref and ref in runs and all(r.name in likes for r in runs[ref]):
                row.update(delta_columns(f"d_{what}", stats.delta(own, side(ref, what), boot.n_boot,
                                                                   boot.confidence, seed)))
        if method != ref and f"d_{LIKELIHOOD[0]}" not in row:
            row["note"] = f"reference `{ref}` has no likelihoods"
        rows.append(row)
    return pd.DataFrame(rows)


def seed_rows(runs: dict[str, list[Run]], scores: dict[str, pd.DataFrame], prefs: dict[str, pd.DataFrame],
              likes: dict[str, pd.DataFrame], pref_table: pd.DataFrame, cfg: CompareConfig) -> pd.DataFrame:
    """One row per run of every method with >= 2 seeds: its own values and its Δ vs the reference's seed
    mean (point estimates; the spread of these rows is the seed variance the method's CIs include)."""
    ref = cfg.reference
    seeded = [m for m, rs in runs.items() if len(rs) > 1]
    if not seeded:
        return pd.DataFrame(columns=["method", "run", "seed"])
    posts = pd.Index(sorted(scores[ref]["post_id"]))
    sc = {r.name: score_frames(scores[r.name]) for m in [*seeded, ref] for r in runs[m]}
    ll = {r: likelihood_frames(f) for r, f in likes.items()}
    ll_posts = pd.Index(sorted({p for f in ll.values() for p in f["reference"].index}))
    pref = Preferences(runs, prefs) if prefs else None
    rows = []
    for method in seeded:
        for run in runs[method]:
            row: dict[str, Any] = {"method": method, "run": run.name, "seed": run.seed}
            for what in ("toxicity", "faithfulness"):
                own = stats.stack([sc[run.name][what]], posts, [what])
                row[what] = stats.estimate(own)
                row[f"d_{what}"] = stats.estimate(own, stats.stack([sc[r.name][what] for r in runs[ref]], posts,
                                                                   [what]))
            if run.name in ll and all(r.name in ll for r in runs[ref]):
                own = stats.stack([ll[run.name]["reference"]], ll_posts, ["lp"])
                row["likelihood_reference"] = stats.estimate(own)
                row["d_likelihood_reference"] = stats.estimate(
                    own, stats.stack([ll[r.name]["reference"] for r in runs[ref]], ll_posts, ["lp"]))
            if pref is not None and pref.scored(method) and pref.scored(ref):
                for axis in PAIR_AXES:
                    kinds = axis_kinds(pref_table, method, axis)
                    if kinds:
                        row[f"d_margin_{axis}"] = stats.estimate(pref.side(method, axis, "token", kinds, runs=[run]),
                                                                 pref.side(ref, axis, "token", kinds))
            rows.append(row)
    return pd.DataFrame(rows)


def axis_kinds(pref_table: pd.DataFrame, method: str, axis: str) -> list[str]:
    """The kinds the per-token axis row of ``method`` averages (empty when it has none)."""
    hit = pref_table[(pref_table["method"] == method) & (pref_table["axis"] == axis) & (pref_table["kind"] == "")
                     & (pref_table["unit"] == "token")]
    return list(hit["kinds"].iloc[0]) if len(hit) and isinstance(hit["kinds"].iloc[0], list) else []

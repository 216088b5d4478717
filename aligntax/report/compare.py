"""Comparing methods: every method against the reference (sft), with paired bootstrap CIs.

The alignment tax of a method is its change in faithfulness against the reference at a
change in toxicity; both deltas are means over the same eval posts, with a paired bootstrap CI
(resampling posts, so the post-to-post spread common to both methods cancels).

Statistics (documented in the report header):
- **Toxicity** is the mean over non-empty generations (an empty output has no toxicity to
  measure); its Δ uses the posts where both the method and the reference said something, and the
  empty rate stands beside it. Faithfulness keeps the rule "empty = 0" (nothing conveyed).
- **MDE**: the minimum detectable effect of each paired Δ at 80% power, two-sided α = 1 -
  confidence: (z_{1-α/2} + z_{0.8}) · SD(paired differences) / √n.
- **Verdict**: a Δ is called only when its Benjamini–Hochberg adjusted p-value (paired t-test,
  adjusted over every Δ the report calls: Δ toxicity and Δ faithfulness of each method, and
  the Δ mean margin of each method and preference axis) is below α.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aligntax.config import METHOD_NAME, ConfigError, check
from aligntax.evaluate.metrics import MetricsConfig, bootstrap_ci, paired_delta_ci
from aligntax.evaluate.patterns import PATTERNS
from aligntax.evaluate.preference import PAIR_AXES, PREFERENCES
from aligntax.io import read_parquet
from aligntax.report.summary import read_json
from aligntax.schema import SCORES

DELTAS = ("toxicity", "faithfulness")
POWER = 0.8


@dataclass
class CompareConfig:
    reference: str = "sft"
    """Method every other method is compared with (the alignment tax is measured against it).

    The bootstrap settings (and α = 1 - confidence of the MDEs and verdicts) are those of the
    `evaluate.metrics` section: one home for them."""

    def __post_init__(self) -> None:
        check(METHOD_NAME.match(self.reference) is not None, "compare.reference", "a method name listed under 'methods'")


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A method's evaluate metrics, with the keys the comparison reads checked."""
    data = read_json(path, "evaluate")
    for key in ("toxicity", "faithfulness", "entity_hallucination", "rouge", "patterns", "length", "n",
                "toxicity.threshold"):
        part = data
        for k in key.split("."):
            part = part.get(k) if isinstance(part, dict) else None
        if part is None:
            raise ValueError(f"{path}: key '{key}' is missing; re-create it with `dvc repro evaluate`")
    return data


def mde(diffs: np.ndarray, confidence: float) -> float:
    """Minimum detectable effect of a paired mean difference at 80% power (normal approximation)."""
    if diffs.size < 2:
        return float("nan")
    z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(POWER)
    return float(z * diffs.std(ddof=1) / np.sqrt(diffs.size))


def p_value(diffs: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(diffs) = 0 (0 or 1 when the differences are constant)."""
    if diffs.size < 2 or np.ptp(diffs) <= 1e-12 * max(1.0, float(np.abs(diffs).max())):
        return 1.0 if diffs.size == 0 or abs(diffs.mean()) <= 1e-12 else 0.0
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def paired(values: np.ndarray, ref: np.ndarray, boot: MetricsConfig, seed: int, prefix: str) -> dict[str, float]:
    """Δ mean with its paired bootstrap CI, MDE, p-value and n, under keys ``prefix``, ``prefix_low`` ..."""
    if values.size == 0:
        nan = float("nan")
        return {prefix: nan, f"{prefix}_low": nan, f"{prefix}_high": nan, f"{prefix}_mde": nan,
                f"{prefix}_p": 1.0, f"{prefix}_n": 0}
    delta, low, high = paired_delta_ci(values, ref, boot.n_boot, boot.confidence, seed)
    diffs = values - ref
    return {prefix: delta, f"{prefix}_low": low, f"{prefix}_high": high, f"{prefix}_mde": mde(diffs, boot.confidence),
            f"{prefix}_p": p_value(diffs), f"{prefix}_n": int(diffs.size)}


def compare(
    methods: list[str], metrics: dict[str, dict], scores: dict[str, pd.DataFrame], cfg: CompareConfig,
    boot: MetricsConfig, seed: int,
) -> pd.DataFrame:
    """One row per method: its metrics and its deltas against ``cfg.reference`` with CIs and MDEs."""
    if cfg.reference not in methods:
        raise ConfigError(f"params.yaml: compare.reference '{cfg.reference}' is not listed under 'methods' "
                          f"({', '.join(methods)}); add it or change compare.reference")
    ref = scores[cfg.reference].set_index("post_id")
    rows = []
    for name in methods:
        m, s = metrics[name], scores[name].set_index("post_id")
        if set(s.index) != set(ref.index):
            raise ValueError(f"{name} and {cfg.reference} were scored on different eval posts; "
                             "re-run `dvc repro` so every method uses the same evaluate.n_posts")
        r = ref.loc[s.index]
        said = ~s["empty"].to_numpy(dtype=bool)
        tox = s["toxicity"].to_numpy()[said]
        row: dict[str, Any] = {"method": name, "n": m["n"], "empty_rate": float(1 - said.mean()), "n_said": int(said.sum())}
        row["toxicity"] = float(tox.mean()) if tox.size else float("nan")
        row["toxicity_low"], row["toxicity_high"] = (
            bootstrap_ci(tox, boot.n_boot, boot.confidence, seed) if tox.size else (float("nan"),) * 2)
        row["faithfulness"], row["faithfulness_low"], row["faithfulness_high"] = (
            m["faithfulness"]["mean"], m["faithfulness"]["ci_low"], m["faithfulness"]["ci_high"])
        both = said & ~r["empty"].to_numpy(dtype=bool)
        row.update(paired(s["toxicity"].to_numpy()[both], r["toxicity"].to_numpy()[both], boot, seed, "d_toxicity"))
        row.update(paired(s["faithfulness"].to_numpy(), r["faithfulness"].to_numpy(), boot, seed, "d_faithfulness"))
        row["share_toxic"] = float((tox >= m["toxicity"]["threshold"]).mean()) if tox.size else float("nan")
        row["entity_hallucination"] = m["entity_hallucination"]["rate"]
        row.update({k: m["rouge"][k] for k in ("rouge1", "rouge2", "rougeL")})
        row.update({k: m["patterns"][k] for k in PATTERNS})
        row["mean_words"] = m["length"]["mean_words"]
        rows.append(row)
    return pd.DataFrame(rows)


def per_post(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean margin and share preferred per (post, axis): the unit the bootstrap resamples."""
    return pairs.groupby(["axis", "post_id"], sort=True).agg(margin=("margin", "mean"), accuracy=("preferred", "mean"))


def compare_preferences(
    methods: list[str], metrics: dict[str, dict], prefs: dict[str, pd.DataFrame], cfg: CompareConfig, boot: MetricsConfig,
    seed: int
) -> pd.DataFrame:
    """One row per (method, axis): accuracy and mean margin, their Δ vs the reference over the
    posts both scored (paired bootstrap CI, MDE, p); methods without preferences get a reason."""
    if all("preference" not in metrics[m] for m in methods):
        return pd.DataFrame(columns=["method", "axis", "note"])
    ref = per_post(prefs[cfg.reference]) if cfg.reference in prefs else None
    rows = []
    for name in methods:
        info = metrics[name].get("preference")
        if info is None or not info.get("applicable", False):
            reason = "not scored (no --groups)" if info is None else f"not applicable: {info.get('reason', '')}"
            rows.append({"method": name, "axis": "all", "note": reason})
            continue
        own = per_post(prefs[name])
        for axis in PAIR_AXES:
            sub = prefs[name][prefs[name]["axis"] == axis]
            row: dict[str, Any] = {"method": name, "axis": axis, "note": "", "pairs": len(sub),
                                   "posts": int(sub["post_id"].nunique())}
            if sub.empty:
                rows.append({**row, "note": "no pairs"})
                continue
            row["accuracy"], row["margin"] = float(sub["preferred"].mean()), float(sub["margin"].mean())
            if ref is not None and axis in ref.index.get_level_values(0):
                a, b = own.loc[axis], ref.loc[axis]
                common = a.index.intersection(b.index)
                for key in ("accuracy", "margin"):
                    row.update(paired(a.loc[common, key].to_numpy(), b.loc[common, key].to_numpy(), boot, seed,
                                      f"d_{key}"))
            rows.append(row)
    return pd.DataFrame(rows)


def adjust(table: pd.DataFrame, prefs: pd.DataFrame, reference: str) -> None:
    """Benjamini–Hochberg q-values (columns ``<delta>_q``) over every Δ a verdict uses, in place."""
    family = [(table, "d_toxicity"), (table, "d_faithfulness"), (prefs, "d_margin")]
    ps, where = [], []
    for frame, key in family:
        if f"{key}_p" not in frame:
            continue
        for i, r in frame.iterrows():
            if r["method"] != reference and not pd.isna(r[f"{key}_p"]) and r.get(f"{key}_n", 0) > 0:
                ps.append(r[f"{key}_p"])
                where.append((frame, key, i))
    for frame, key in family:
        frame[f"{key}_q"] = np.nan
    if ps:
        for (frame, key, i), q in zip(where, stats.false_discovery_control(ps, method="bh"), strict=True):
            frame.loc[i, f"{key}_q"] = float(q)


def verdict(row: pd.Series, reference: str, alpha: float = 0.05) -> str:
    """In words: which way toxicity and faithfulness moved, counting only Δs whose BH q < alpha."""
    if row["method"] == reference:
        return "reference"

    def way(key: str, up: str, down: str) -> str:
        q = row.get(f"d_{key}_q", np.nan)
        if pd.isna(q) or q >= alpha:
            return f"{key} ~same"
        return up if row[f"d_{key}"] > 0 else down

    tox = way("toxicity", "more toxic", "less toxic")
    faith = way("faithfulness", "more faithful", "less faithful (tax)")
    return f"{tox}, {faith}"


def _r(x: Any) -> float | None:
    return None if pd.isna(x) else round(float(x), 4)


def key_metrics(table: pd.DataFrame, prefs: pd.DataFrame | None = None) -> dict[str, Any]:
    """The numbers `dvc exp show` / `dvc metrics diff` show, one group per method (4 decimals)."""
    out: dict[str, Any] = {"methods": len(table), "posts": int(table["n"].min())}
    for _, r in table.iterrows():
        out[r["method"]] = {
            k: _r(r[k])
            for k in ("toxicity", "empty_rate", "d_toxicity", "d_toxicity_low", "d_toxicity_high", "d_toxicity_mde",
                      "faithfulness", "d_faithfulness", "d_faithfulness_low", "d_faithfulness_high",
                      "d_faithfulness_mde", "share_toxic", "entity_hallucination", "rougeL")
        }
    if prefs is not None and "d_margin" in prefs:
        for _, r in prefs[prefs["axis"].isin(PAIR_AXES)].iterrows():
            out[r["method"]][f"pref_{r['axis']}"] = {
                k: _r(r.get(k)) for k in ("pairs", "accuracy", "margin", "d_accuracy", "d_margin", "d_margin_low",
                                          "d_margin_high", "d_margin_mde")
            }
    return out


def tradeoff_points(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Plot data for `dvc plots`: one point per method (mean toxicity, mean faithfulness)."""
    return [
        {"method": r["method"], "toxicity": _r(r["toxicity"]), "faithfulness": _r(r["faithfulness"])}
        for _, r in table.iterrows()
    ]


def load_inputs(methods: list[str], metrics_dir: str | Path, eval_dir: str | Path) -> tuple[dict, dict, dict]:
    """Every method's metrics JSON, per-post scores and (when scored) preference pairs, validated."""
    metrics = {m: read_metrics(Path(metrics_dir) / f"{m}.json") for m in methods}
    scores = {m: read_parquet(Path(eval_dir) / m / "scores.parquet", SCORES) for m in methods}
    for m, s in scores.items():
        if not np.isfinite(s[list(DELTAS)].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{Path(eval_dir) / m / 'scores.parquet'}: non-finite toxicity/faithfulness; "
                             "re-create it with `dvc repro evaluate`")
    prefs = {m: read_parquet(Path(eval_dir) / m / "preferences.parquet", PREFERENCES)
             for m in methods if metrics[m].get("preference", {}).get("applicable", False)}
    for m, p in prefs.items():
        repeated = int(p.duplicated().sum())  # a pair has no id column: a row repeated whole is counted twice
        if repeated:
            raise ValueError(f"{Path(eval_dir) / m / 'preferences.parquet'}: {repeated} row(s) repeat another row "
                             "(the same pair twice); re-create it with `dvc repro evaluate`")
        if not np.isfinite(p["margin"].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{Path(eval_dir) / m / 'preferences.parquet'}: non-finite margins; "
                             "re-create it with `dvc repro evaluate`")
    return metrics, scores, prefs

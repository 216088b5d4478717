"""Comparing methods: every method against the reference (sft), with paired bootstrap CIs.

The alignment tax of a method is its change in faithfulness against the reference at a change
in toxicity; both deltas are over the same eval posts, paired (resampling posts, so the
post-to-post spread common to both methods cancels). A method trained with several seeds
(params.yaml `seeds`) is its seed mean, and its CIs resample its seeds too (aligntax/report/stats.py);
a single-seed method's CI holds no seed variance of its own, and the report marks it so.

Statistics (documented in the report header):
- **Toxicity** is the mean over non-empty generations (an empty output has no toxicity to
  measure); its Δ uses the posts where both the method and the reference said something, and the
  empty rate stands beside it. Faithfulness keeps the rule "empty = 0" (nothing conveyed).
- **MDE**: the minimum detectable effect of each Δ at 80% power, two-sided α = 1 - confidence:
  (z_{1-α/2} + z_{0.8}) · SE (aligntax/report/stats.py).
- **Verdict**: a Δ is called only when its Benjamini–Hochberg adjusted p-value is below α; the
  family (``FAMILY``) is every headline Δ of the report: Δ toxicity and Δ faithfulness of each
  method, its per-token Δ margin of each preference axis and kind that has a CI, and its Δ
  log-likelihood of the references and of the positives. The summed-margin Δs (the same pairs in
  another unit, kept in metrics/compare.json) and the per-seed Δs are not tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sp

from aligntax.config import METHOD_NAME, ConfigError, check
from aligntax.evaluate.metrics import MetricsConfig
from aligntax.evaluate.patterns import PATTERNS
from aligntax.evaluate.preference import LIKELIHOODS, PREFERENCES
from aligntax.io import read_parquet
from aligntax.methods import Run
from aligntax.report import stats
from aligntax.report.summary import read_json
from aligntax.schema import SCORES

DELTAS = ("toxicity", "faithfulness")
DELTA_KEYS = ("", "_low", "_high", "_se", "_mde", "_p", "_n")
"""Suffixes of a Δ's columns: ``d_<name>``, ``d_<name>_low`` ... (and ``_q`` once adjusted)."""


@dataclass
class CompareConfig:
    reference: str = "sft"
    """Method every other method is compared with (the alignment tax is measured against it).

    The bootstrap settings (and α = 1 - confidence of the MDEs and verdicts) are those of the
    `evaluate.metrics` section: one home for them."""
    min_posts: int = 5
    """A preference kind needs this many posts (scored by both methods) for a CI; fewer: "too few"."""

    def __post_init__(self) -> None:
        check(METHOD_NAME.match(self.reference) is not None, "compare.reference", "a method name listed under 'methods'")
        check(isinstance(self.min_posts, int) and self.min_posts >= 2, "compare.min_posts", "an integer >= 2")


def read_metrics(path: str | Path, producer: str = "evaluate") -> dict[str, Any]:
    """A run's evaluate metrics, with the keys the comparison reads checked (``producer``: the stage to re-run)."""
    data = read_json(path, producer)
    for key in ("toxicity", "faithfulness", "entity_hallucination", "rouge", "patterns", "length", "n",
                "toxicity.threshold"):
        part = data
        for k in key.split("."):
            part = part.get(k) if isinstance(part, dict) else None
        if part is None:
            raise ValueError(f"{path}: key '{key}' is missing; re-create it with `dvc repro {producer}`")
    return data


def mde(diffs: np.ndarray, confidence: float) -> float:
    """Minimum detectable effect of a paired mean difference at 80% power (normal approximation)."""
    return stats.mde(diffs, confidence)


def delta_columns(prefix: str, result: dict[str, float] | None) -> dict[str, Any]:
    """A ``stats.delta`` result as columns ``prefix``, ``prefix_low`` ...; NaN (p 1, n 0) when None."""
    if result is None:
        return {prefix: np.nan, f"{prefix}_low": np.nan, f"{prefix}_high": np.nan, f"{prefix}_se": np.nan,
                f"{prefix}_mde": np.nan, f"{prefix}_p": 1.0, f"{prefix}_n": 0}
    return {prefix: result["delta"], f"{prefix}_low": result["low"], f"{prefix}_high": result["high"],
            f"{prefix}_se": result["se"], f"{prefix}_mde": result["mde"], f"{prefix}_p": result["p"],
            f"{prefix}_n": result["n"]}


def score_frames(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A run's per-post measures (post x one column): toxicity NaN where the generation is empty."""
    s = scores.set_index("post_id")
    return {"toxicity": s[["toxicity"]].where(~s[["empty"]].to_numpy(dtype=bool)),
            "faithfulness": s[["faithfulness"]]}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def compare(
    runs: dict[str, list[Run]], metrics: dict[str, dict], scores: dict[str, pd.DataFrame], cfg: CompareConfig,
    boot: MetricsConfig, seed: int,
) -> pd.DataFrame:
    """One row per method: its seed-mean metrics and its deltas against ``cfg.reference`` with CIs and MDEs."""
    methods = list(runs)
    if cfg.reference not in runs:
        raise ConfigError(f"params.yaml: compare.reference '{cfg.reference}' is not listed under 'methods' "
                          f"({', '.join(methods)}); add it or change compare.reference")
    posts = pd.Index(sorted(scores[cfg.reference]["post_id"]))
    for method_runs in runs.values():
        for run in method_runs:
            if set(scores[run.name]["post_id"]) != set(posts):
                raise ValueError(f"{run.name} and {cfg.reference} were scored on different eval posts; "
                                 "re-run `dvc repro` so every method uses the same evaluate.n_posts")
    frames = {run.name: score_frames(scores[run.name]) for rs in runs.values() for run in rs}

    def side(name: str, measure: str) -> stats.Side:
        return stats.stack([frames[r.name][measure] for r in runs[name]], posts, [measure])

    rows = []
    for name, method_runs in runs.items():
        names = [r.name for r in method_runs]
        row: dict[str, Any] = {"method": name, "seeds": len(names), "runs": names,
                               "n": min(int(metrics[r]["n"]) for r in names)}
        for measure in DELTAS:
            lv = stats.level(side(name, measure), boot.n_boot, boot.confidence, seed)
            row[measure], row[f"{measure}_low"], row[f"{measure}_high"] = lv["value"], lv["low"], lv["high"]
            result = None if name == cfg.reference else stats.delta(
                side(name, measure), side(cfg.reference, measure), boot.n_boot, boot.confidence, seed)
            row.update(delta_columns(f"d_{measure}", result if result is not None else
                                     {"delta": 0.0, "low": 0.0, "high": 0.0, "se": 0.0, "mde": 0.0, "p": 1.0,
                                      "n": len(posts)}))
        said = [~scores[r]["empty"].to_numpy(dtype=bool) for r in names]
        row["empty_rate"] = _mean([float(1 - s.mean()) for s in said])
        toxic = [(scores[r]["toxicity"].to_numpy()[s] >= metrics[r]["toxicity"]["threshold"]).mean()
                 for r, s in zip(names, said, strict=True) if s.any()]
        row["share_toxic"] = _mean([float(t) for t in toxic])
        row["entity_hallucination"] = _mean([metrics[r]["entity_hallucination"]["rate"] for r in names])
        for k in ("rouge1", "rouge2", "rougeL"):
            row[k] = _mean([metrics[r]["rouge"][k] for r in names])
        for k in PATTERNS:
            row[k] = _mean([metrics[r]["patterns"][k] for r in names])
        row["mean_words"] = _mean([metrics[r]["length"]["mean_words"] for r in names])
        rows.append(row)
    return pd.DataFrame(rows)


FAMILY = (("table", "d_toxicity"), ("table", "d_faithfulness"), ("prefs", "d_margin"),
          ("likelihood", "d_reference"), ("likelihood", "d_positives"))
"""(frame, Δ) pairs whose p-values form the Benjamini–Hochberg family (preferences: per-token rows only)."""


def adjust(frames: dict[str, pd.DataFrame], reference: str) -> int:
    """Benjamini–Hochberg q-values (columns ``<delta>_q``) over ``FAMILY``, in place; returns its size."""
    ps, where = [], []
    for frame_name, key in FAMILY:
        frame = frames.get(frame_name)
        if frame is None or f"{key}_p" not in frame:
            continue
        frame[f"{key}_q"] = np.nan
        for i, r in frame.iterrows():
            if frame_name == "prefs" and r.get("unit") != "token":
                continue
            if r["method"] != reference and not pd.isna(r[f"{key}_p"]) and r.get(f"{key}_n", 0) > 0 \
                    and not pd.isna(r.get(key)) and not pd.isna(r.get(f"{key}_low")):
                ps.append(r[f"{key}_p"])
                where.append((frame, key, i))
    if ps:
        for (frame, key, i), q in zip(where, sp.false_discovery_control(ps, method="bh"), strict=True):
            frame.loc[i, f"{key}_q"] = float(q)
    return len(ps)


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


def _r(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, str):
        return x
    return None if pd.isna(x) else round(float(x), 4)


def _delta(r: pd.Series | dict, key: str) -> dict[str, Any]:
    return {f"{key}{s}": _r(r.get(f"{key}{s}")) for s in (*DELTA_KEYS, "_q") if f"{key}{s}" in r}


MAIN_KEYS = ("toxicity", "toxicity_low", "toxicity_high", "empty_rate", "faithfulness", "faithfulness_low",
             "faithfulness_high", "share_toxic", "entity_hallucination", "rougeL")


def key_metrics(table: pd.DataFrame, prefs: pd.DataFrame | None = None, likelihood: pd.DataFrame | None = None,
                per_seed: pd.DataFrame | None = None) -> dict[str, Any]:
    """metrics/compare.json: per method its seed-mean metrics, every Δ with CI/SE/MDE/p/q, the preference
    rows (``pref_<axis>``: per token, the kinds its axis value averages under ``averaged``, each kind's row
    under ``kinds``, the same in summed nats under ``summed``), the
    likelihood Δs and its per-seed rows (4 decimals)."""
    out: dict[str, Any] = {"methods": len(table), "posts": int(table["n"].min())}
    for _, r in table.iterrows():
        entry = {"seeds": int(r["seeds"]), "runs": list(r["runs"])}
        entry.update({k: _r(r[k]) for k in MAIN_KEYS})
        for measure in DELTAS:
            entry.update(_delta(r, f"d_{measure}"))
        out[r["method"]] = entry
    if prefs is not None and len(prefs):
        for (method, axis), group in prefs[prefs["axis"] != "all"].groupby(["method", "axis"], sort=False):
            out[method][f"pref_{axis}"] = preference_entry(group)
        for _, r in prefs[prefs["axis"] == "all"].iterrows():
            out[r["method"]]["pref"] = {"note": r["note"]}
    if likelihood is not None and len(likelihood):
        for _, r in likelihood.iterrows():
            entry = {k: _r(r.get(k)) for k in ("note", "posts", "reference", "positives") if k in r}
            entry.update(_delta(r, "d_reference") | _delta(r, "d_positives"))
            out[r["method"]]["likelihood"] = entry
    if per_seed is not None and len(per_seed):
        for method, group in per_seed.groupby("method", sort=False):
            out[method]["per_seed"] = [{k: _r(v) if k not in ("run", "method") else v for k, v in row.items()
                                        if k != "method"} for row in group.to_dict("records")]
    return out


ROW_KEYS = ("note", "kinds", "pairs", "posts", "accuracy", "margin")


def _row(r: pd.Series) -> dict[str, Any]:
    return {k: _r(r[k]) for k in ROW_KEYS if k in r and not (k == "note" and not r[k])} | _delta(r, "d_margin")


def preference_entry(group: pd.DataFrame) -> dict[str, Any]:
    """One method's ``pref_<axis>`` object from its preference rows of that axis (both units)."""
    out: dict[str, Any] = {}
    for unit, target in (("token", out), ("sum", out.setdefault("summed", {}))):
        rows = group[group["unit"] == unit]
        for _, r in rows[rows["kind"] == ""].iterrows():
            target.update(_row(r))
            target["averaged"] = target.pop("kinds", [])  # the kinds the axis gives equal weight
        target["kinds"] = {r["kind"]: _row(r) for _, r in rows[rows["kind"] != ""].iterrows()}
    return out


def tradeoff_points(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Plot data for `dvc plots`: one point per method (mean toxicity, mean faithfulness)."""
    return [
        {"method": r["method"], "toxicity": _r(r["toxicity"]), "faithfulness": _r(r["faithfulness"])}
        for _, r in table.iterrows()
    ]


def load_inputs(runs: dict[str, list[Run]], metrics_dir: str | Path,
                eval_dir: str | Path) -> tuple[dict, dict, dict, dict]:
    """Every run's metrics JSON, per-post scores and (when scored) preference pairs and variant
    likelihoods, validated; keyed by run name."""
    names = [r.name for rs in runs.values() for r in rs]
    stage = {r.name: f"evaluate@{m}" if r.name == m else f"evaluate-seed@{m}-{r.seed}" for m, rs in runs.items()
             for r in rs}
    metrics = {m: read_metrics(Path(metrics_dir) / f"{m}.json", stage[m]) for m in names}
    scores = {m: read_parquet(Path(eval_dir) / m / "scores.parquet", SCORES) for m in names}
    for m, s in scores.items():
        if not np.isfinite(s[list(DELTAS)].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{Path(eval_dir) / m / 'scores.parquet'}: non-finite toxicity/faithfulness; "
                             "re-create it with `dvc repro evaluate`")
    scored = [m for m in names if metrics[m].get("preference", {}).get("applicable", False)]
    prefs = {m: read_parquet(Path(eval_dir) / m / "preferences.parquet", PREFERENCES) for m in scored}
    likes = {m: read_parquet(Path(eval_dir) / m / "likelihoods.parquet", LIKELIHOODS) for m in scored}
    for m in scored:
        repeated = int(prefs[m].duplicated().sum())  # a pair has no id column: a row repeated whole is counted twice
        if repeated:
            raise ValueError(f"{Path(eval_dir) / m / 'preferences.parquet'}: {repeated} row(s) repeat another row "
                             "(the same pair twice); re-create it with `dvc repro evaluate`")
        for frame, file, cols in ((prefs[m], "preferences.parquet", ["margin_sum", "margin_mean"]),
                                  (likes[m], "likelihoods.parquet", ["logprob_sum"])):
            if not np.isfinite(frame[cols].to_numpy(dtype=np.float64)).all():
                raise ValueError(f"{Path(eval_dir) / m / file}: non-finite values in {', '.join(cols)}; "
                                 "re-create it with `dvc repro evaluate`")
        if (likes[m]["n_tokens"] < 1).any():
            raise ValueError(f"{Path(eval_dir) / m / 'likelihoods.parquet'}: a variant with no tokens; "
                             "re-create it with `dvc repro evaluate`")
    return metrics, scores, prefs, likes

"""Comparing methods: every method against the reference (sft), with paired bootstrap CIs.

The alignment tax of a method is its change in faithfulness against the reference at a
change in toxicity; both deltas are means over the same eval posts, with a paired bootstrap CI
(resampling posts, so the post-to-post spread common to both methods cancels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aligntax.config import METHOD_NAME, ConfigError, check
from aligntax.evaluate.metrics import MetricsConfig, paired_delta_ci
from aligntax.evaluate.patterns import PATTERNS
from aligntax.io import read_parquet
from aligntax.schema import SCORES

DELTAS = ("toxicity", "faithfulness")


@dataclass
class CompareConfig:
    reference: str = "sft"
    """Method every other method is compared with (the alignment tax is measured against it)."""

    def __post_init__(self) -> None:
        check(METHOD_NAME.match(self.reference) is not None, "compare.reference", "a method name listed under 'methods'")


def load_methods(params: dict[str, Any]) -> dict[str, str]:
    """The top-level ``methods`` mapping of params.yaml: method name -> model folder."""
    methods = params.get("methods")
    check(isinstance(methods, dict) and len(methods) > 0, "methods", "a mapping of method name -> model folder")
    for name, model in methods.items():
        check(isinstance(name, str) and METHOD_NAME.match(name) is not None, f"methods.{name}",
              "a name of lower-case letters, digits, '_' or '-'")
        check(isinstance(model, str) and model.strip() != "", f"methods.{name}", "a model folder, e.g. models/sft")
    return dict(methods)


def read_metrics(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found; run `dvc repro evaluate` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-create it with `dvc repro evaluate`") from err
    for key in ("toxicity", "faithfulness", "entity_hallucination", "rouge", "patterns", "length", "n"):
        if key not in data:
            raise ValueError(f"{path}: key '{key}' is missing; re-create it with `dvc repro evaluate`")
    return data


def compare(
    methods: list[str], metrics: dict[str, dict], scores: dict[str, pd.DataFrame], cfg: CompareConfig,
    boot: MetricsConfig, seed: int,
) -> pd.DataFrame:
    """One row per method: its metrics and its deltas against ``cfg.reference`` with CIs (``boot``'s
    n_boot / confidence, the bootstrap settings of the `evaluate.metrics` section)."""
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
        row: dict[str, Any] = {"method": name, "n": m["n"]}
        for key in DELTAS:
            row[key], row[f"{key}_low"], row[f"{key}_high"] = (m[key]["mean"], m[key]["ci_low"], m[key]["ci_high"])
            delta, low, high = paired_delta_ci(s[key].to_numpy(), ref.loc[s.index, key].to_numpy(),
                                               boot.n_boot, boot.confidence, seed)
            row[f"d_{key}"], row[f"d_{key}_low"], row[f"d_{key}_high"] = delta, low, high
        row["share_toxic"] = m["toxicity"]["share_toxic"]
        row["max_toxicity"] = m["toxicity"]["max"]
        row["entity_hallucination"] = m["entity_hallucination"]["rate"]
        row.update({k: m["rouge"][k] for k in ("rouge1", "rouge2", "rougeL")})
        row.update({k: m["patterns"][k] for k in PATTERNS})
        row["mean_words"] = m["length"]["mean_words"]
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(row: pd.Series, reference: str) -> str:
    """In words: which way toxicity and faithfulness moved, counting only CIs that exclude 0."""
    if row["method"] == reference:
        return "reference"

    def way(key: str, up: str, down: str) -> str:
        if row[f"d_{key}_low"] > 0:
            return up
        if row[f"d_{key}_high"] < 0:
            return down
        return f"{key} ~same"

    tox = way("toxicity", "more toxic", "less toxic")
    faith = way("faithfulness", "more faithful", "less faithful (tax)")
    return f"{tox}, {faith}"


def key_metrics(table: pd.DataFrame) -> dict[str, Any]:
    """The numbers `dvc exp show` / `dvc metrics diff` show, one group per method."""
    out: dict[str, Any] = {"methods": len(table), "posts": int(table["n"].min())}
    for _, r in table.iterrows():
        out[r["method"]] = {
            k: round(float(r[k]), 6)
            for k in ("toxicity", "d_toxicity", "d_toxicity_low", "d_toxicity_high", "faithfulness", "d_faithfulness",
                      "d_faithfulness_low", "d_faithfulness_high", "share_toxic", "entity_hallucination", "rougeL")
        }
    return out


def tradeoff_points(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Plot data for `dvc plots`: one point per method (mean toxicity, mean faithfulness)."""
    return [
        {"method": r["method"], "toxicity": round(float(r["toxicity"]), 6), "faithfulness": round(float(r["faithfulness"]), 6)}
        for _, r in table.iterrows()
    ]


def load_inputs(methods: list[str], metrics_dir: str | Path, eval_dir: str | Path) -> tuple[dict, dict]:
    """Every method's metrics JSON and per-post scores (validated), or one clear error."""
    metrics = {m: read_metrics(Path(metrics_dir) / f"{m}.json") for m in methods}
    scores = {m: read_parquet(Path(eval_dir) / m / "scores.parquet", SCORES) for m in methods}
    for m, s in scores.items():
        if not np.isfinite(s[list(DELTAS)].to_numpy(dtype=np.float64)).all():
            raise ValueError(f"{Path(eval_dir) / m / 'scores.parquet'}: non-finite toxicity/faithfulness; "
                             "re-create it with `dvc repro evaluate`")
    return metrics, scores

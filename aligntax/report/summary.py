"""The curated metrics: the few numbers per method a researcher compares across experiments.

`dvc metrics show/diff` and `dvc exp show` read only metrics/summary.json; every other JSON under
metrics/ is a run fact (seconds, row counts, CIs) kept as a plain output. The same stage gathers the
trained methods' loss curves into one table (metrics/train_curves.json) that `dvc plots` draws. Values are rounded to
``SummaryConfig.digits`` so float noise from a re-run (BLAS, ~1e-16) never shows as a change,
and -0.0 is written as 0.0.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aligntax.config import check

# compare.json key -> short summary key (short keys keep `dvc exp show` columns narrow)
COMPARE_KEYS = {"toxicity": "tox", "faithfulness": "faith"}
DELTA_KEYS = {"d_toxicity": "d_tox", "d_faithfulness": "d_faith"}
# compare.json `likelihood` key -> summary key: the references' (and positives') mean log-prob per
# token and their Δ vs the reference method (the likelihood face of the alignment tax)
LIKELIHOOD_KEYS = {"reference": "ll_ref", "positives": "ll_pos"}
LIKELIHOOD_DELTA_KEYS = {"d_reference": "d_ll_ref", "d_positives": "d_ll_pos"}
# training metrics key -> summary key: the run's mean loss, the CE of the last logging interval,
# the contrastive loss weight (what loss.scale changes)
TRAIN_KEYS = {"train_loss": "loss", "ce_last": "ce", "w_posts_mean": "w"}
# leaves of a `preference` object that are intervals, power or counts, not results to compare
PREF_SKIP_SUFFIXES = ("_low", "_high", "low", "high", "mde", "_se", "_p", "_q")
# dict levels kept below a preference object: preference.axes.<axis>.accuracy is kept, a deeper
# per-kind breakdown (preference.axes.<axis>.kinds.<kind>.accuracy) stays in the evaluate JSON
PREF_DEPTH = 3


@dataclass
class SummaryConfig:
    digits: int = 3
    """Decimals every summary value is rounded to (a change smaller than this is noise here)."""

    def __post_init__(self) -> None:
        check(isinstance(self.digits, int) and 1 <= self.digits <= 8, "summary.digits", "an integer in [1, 8]")


def rounded(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` decimals, with -0.0 normalised to 0.0."""
    out = round(float(value), digits)
    return 0.0 if out == 0 else out


def read_json(path: str | Path, producer: str) -> dict[str, Any]:
    """A metrics JSON object, or one clear error naming the file and the stage that writes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found; run `dvc repro {producer}` first")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-create it with `dvc repro {producer}`") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object; re-create it with `dvc repro {producer}`")
    return data


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def preference_values(pref: Any, digits: int, depth: int = PREF_DEPTH) -> dict[str, Any]:
    """The result leaves of a preference object, nested as given (``depth`` levels) and rounded.

    Generic on purpose: any float leaf is kept; integer leaves (pair counts) and interval / power
    leaves (``*_low``, ``*_high``, ``mde``) are run facts and are left out.
    """
    if not isinstance(pref, dict) or depth <= 0:
        return {}
    out: dict[str, Any] = {}
    for key, value in pref.items():
        if isinstance(value, dict):
            sub = preference_values(value, digits, depth - 1)
            if sub:
                out[key] = sub
        elif isinstance(value, float) and _is_number(value) and not str(key).lower().endswith(PREF_SKIP_SUFFIXES):
            out[key] = rounded(value, digits)
    return out


def method_summary(
    name: str, compared: dict[str, Any], evaluated: dict[str, Any], trained: dict[str, Any] | None,
    reference: str, digits: int,
) -> dict[str, Any]:
    """One method's curated numbers: tox, faith, their deltas vs the reference, the references'
    likelihood and its delta, preferences, losses."""
    out: dict[str, Any] = {}
    # the reference's deltas are 0 by construction
    for key, short in (COMPARE_KEYS | DELTA_KEYS if name != reference else COMPARE_KEYS).items():
        value = compared.get(key)
        if key not in compared or not (value is None or _is_number(value)):
            raise ValueError(f"compare metrics of '{name}' lack a number '{key}'; re-create them with `dvc repro compare`")
        # null: undefined for this method (toxicity when every generation is empty), kept as null
        out[short] = None if value is None else rounded(value, digits)
    likelihood = compared.get("likelihood")
    wanted = LIKELIHOOD_KEYS | (LIKELIHOOD_DELTA_KEYS if name != reference else {})
    for key, short in wanted.items():
        if isinstance(likelihood, dict) and _is_number(likelihood.get(key)):
            out[short] = rounded(likelihood[key], digits)
    # preferences: compare's per-axis groups (`pref_<axis>`, with deltas vs the reference) when it
    # wrote them, else the evaluate JSON's own `preference` object
    groups = {k: preference_values(v, digits) for k, v in compared.items() if str(k).startswith("pref")}
    groups = {k: v for k, v in groups.items() if v}
    if groups:
        out.update(groups)
    elif pref := preference_values(evaluated.get("preference"), digits):
        out["pref"] = pref
    for key, short in TRAIN_KEYS.items():
        if trained is not None and _is_number(trained.get(key)):
            out[short] = rounded(trained[key], digits)
    return out


def summarize(
    methods: list[str], compared: dict[str, Any], evaluated: dict[str, dict[str, Any]],
    trained: dict[str, dict[str, Any]], reference: str, cfg: SummaryConfig,
) -> dict[str, Any]:
    """metrics/summary.json: ``{method: {tox, faith, d_tox, d_faith, ll_ref, d_ll_ref, ..., pref..., loss, ce, w}}``
    in ``methods`` order."""
    if reference not in methods:
        raise ValueError(f"compare.reference '{reference}' is not listed under 'methods' ({', '.join(methods)}); "
                         "add it or change compare.reference in params.yaml")
    out: dict[str, Any] = {}
    for name in methods:
        if not isinstance(compared.get(name), dict):
            raise ValueError(f"compare metrics have no entry for method '{name}'; re-create them with `dvc repro compare`")
        out[name] = method_summary(name, compared[name], evaluated.get(name, {}), trained.get(name), reference, cfg.digits)
    return out


def load_reference(params: dict[str, Any], methods: list[str]) -> str:
    """``compare.reference`` (the method every delta is against), checked to be one of ``methods``.

    Read here without importing aligntax.report.compare, which pulls in the evaluation stack.
    """
    reference = (params.get("compare") or {}).get("reference")
    check(isinstance(reference, str) and reference in methods, "compare.reference", "a method name listed under 'methods'")
    return reference


def load_inputs(
    methods: list[str], trained: list[str], compare_path: str | Path, evaluate_dir: str | Path, train_dir: str | Path,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """compare.json, every method's evaluate JSON and the training JSON (``<train_dir>/<method>.json``) of
    each evaluated method that is ``trained``; base, fitted and decoding-time methods have none."""
    compared = read_json(compare_path, "compare")
    evaluated = {m: read_json(Path(evaluate_dir) / f"{m}.json", f"evaluate@{m}") for m in methods}
    train = {m: read_json(Path(train_dir) / f"{m}.json", f"train@{m}") for m in methods if m in trained}
    return compared, evaluated, train


CURVE = Path("plots") / "metrics" / "train" / "loss.tsv"
"""A method's loss curve inside its DVCLive folder (the `loss` key logged by the training core)."""


def training_curves(live_dir: str | Path, trained: list[str]) -> list[dict[str, Any]]:
    """Every trained method's loss curve as one table, ``{method, step, loss}`` rows in ``trained`` order.

    Reads ``<live_dir>/train_<method>/plots/metrics/train/loss.tsv`` (the DVCLive folder of train@<method>),
    so `dvc plots` draws one file with a method column, whatever the methods are.
    """
    rows: list[dict[str, Any]] = []
    for method in trained:
        path = Path(live_dir) / f"train_{method}" / CURVE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training curve not found; run `dvc repro train@{method}` first")
        with path.open(newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if not {"step", "loss"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}: expected columns step and loss; re-create it with `dvc repro train@{method}`")
            rows += [{"method": method, "step": int(r["step"]), "loss": float(r["loss"])} for r in reader]
    return rows


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in [header, *rows]]


def table(summary: dict[str, Any], digits: int = SummaryConfig.digits) -> str:
    """metrics/summary.json as text: one row per method, then one per method and preference axis.

    One revision's key view, well under 100 columns.
    """
    def cell(values: dict[str, Any], key: str) -> str:
        return f"{values[key]:.{digits}f}" if _is_number(values.get(key)) else "-"

    columns = ["tox", "faith", "d_tox", "d_faith", "ll_ref", "d_ll_ref", "loss", "ce", "w"]
    lines = _rows(["method", *columns], [[m, *(cell(v, c) for c in columns)] for m, v in summary.items()])
    groups = [(m, g, v[g]) for m, v in summary.items() for g in v if g.startswith("pref_") and isinstance(v[g], dict)]
    if groups:
        keys = list(dict.fromkeys(k for _, _, values in groups for k, v in values.items() if not isinstance(v, dict)))
        lines += [""] + _rows(["method", "preference", *keys],
                              [[m, g.removeprefix("pref_"), *(cell(values, k) for k in keys)] for m, g, values in groups])
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(read_json(sys.argv[1] if len(sys.argv) > 1 else "metrics/summary.json", "summarize")))

"""Per-kind preference rows, the equal-weight axis, "too few" and missing kinds, the references'
likelihood and the per-seed rows, on hand-built pairs whose values are computed here by hand."""

import numpy as np
import pandas as pd
import pytest

from aligntax.evaluate.metrics import MetricsConfig
from aligntax.methods import Run
from aligntax.report.compare import CompareConfig, preference_entry
from aligntax.report.preferences import likelihood_rows, preference_rows, seed_rows
from aligntax.report.render import preference_lines

P = 10
BOOT = MetricsConfig(n_boot=300)
RUNS = {"sft": [Run("sft", 0)], "contrastive": [Run("contrastive", 0)]}
METRICS = {m: {"preference": {"applicable": True}} for m in RUNS}


def _pair(method: str, post: int, axis: str, kind: str, margin: float) -> dict:
    return {"post_id": f"p{post}", "method": method, "axis": axis, "kind": kind, "good": "reference",
            "margin_sum": 10 * margin, "margin_mean": margin, "margin": margin, "preferred": margin > 0}


def _pairs(method: str, swap_shift: float, with_toxic_lm: bool = True) -> pd.DataFrame:
    """Entity: swap_ent on all 10 posts (margin 1 + shift; p0 has two pairs, 0.5 and 1.5 + shift),
    mask_regen on 6 posts (margin 3), sys_lowcon on 3 posts (too few); toxic: toxic_lm on every post."""
    rows = [_pair(method, i, "entity", "swap_ent", 1.0 + swap_shift) for i in range(1, P)]
    rows += [_pair(method, 0, "entity", "swap_ent", m + swap_shift) for m in (0.5, 1.5)]
    rows += [_pair(method, i, "entity", "mask_regen", 3.0) for i in range(6)]
    rows += [_pair(method, i, "entity", "sys_lowcon", -1.0 + i) for i in range(3)]
    rows += [_pair(method, i, "toxic", "toxic_lm", 0.2 * i) for i in range(P)] if with_toxic_lm else []
    return pd.DataFrame(rows)


def _row(table: pd.DataFrame, method: str, axis: str, kind: str, unit: str = "token") -> pd.Series:
    hit = table[(table["method"] == method) & (table["axis"] == axis) & (table["kind"] == kind)
                & (table["unit"] == unit)]
    assert len(hit) == 1, (method, axis, kind, unit)
    return hit.iloc[0]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    prefs = {"sft": _pairs("sft", 0.0), "contrastive": _pairs("contrastive", 1.0, with_toxic_lm=False)}
    return preference_rows(RUNS, METRICS, prefs, CompareConfig(), BOOT, 0)


def test_axis_gives_each_kind_equal_weight_whatever_the_kinds_of_a_post(table):
    axis = _row(table, "sft", "entity", "")
    # kind means: swap_ent 1.0 (p0's two pairs averaged first), mask_regen 3.0 -> (1 + 3) / 2; mixing
    # the kinds within each post first would give (6 x 2 + 4 x 1) / 10 = 1.6
    assert axis["margin"] == pytest.approx(2.0) and axis["kinds"] == ["swap_ent", "mask_regen"]
    assert axis["pairs"] == 11 + 6 and axis["posts"] == P
    d = _row(table, "contrastive", "entity", "")
    assert d["d_margin"] == pytest.approx(0.5)  # (+1 on swap_ent + 0 on mask_regen) / 2, not 0.7
    assert d["d_margin_low"] == pytest.approx(0.5) and d["d_margin_high"] == pytest.approx(0.5)
    assert "without sys_lowcon (too few)" in d["note"]
    swap = _row(table, "contrastive", "entity", "swap_ent")
    assert (swap["pairs"], swap["posts"], swap["d_margin"]) == (11, P, pytest.approx(1.0))
    assert swap["d_margin_n"] == P and _row(table, "contrastive", "entity", "mask_regen")["d_margin_n"] == 6


def test_summed_margins_are_reported_beside_per_token_ones(table):
    assert _row(table, "sft", "entity", "", "sum")["margin"] == pytest.approx(20.0)
    assert _row(table, "contrastive", "entity", "swap_ent", "sum")["d_margin"] == pytest.approx(10.0)


def test_a_kind_with_fewer_than_min_posts_gets_too_few_and_no_interval(table):
    row = _row(table, "contrastive", "entity", "sys_lowcon")
    assert row["note"] == "too few: 3 posts (< 5)" and row["posts"] == 3 and row["pairs"] == 3
    assert row["d_margin"] == pytest.approx(0.0) and pd.isna(row.get("d_margin_low"))
    assert _row(table, "sft", "entity", "sys_lowcon")["margin"] == pytest.approx(0.0)  # (-1 + 0 + 1) / 3
    lines = "\n".join(preference_lines(table, "sft", 0.95))
    assert "| `contrastive` | 1 | sys_lowcon | 3 (3) | 33% | +0.000 | +0.000, too few: 3 posts (< 5) | – |" in lines


def test_a_kind_a_method_lacks_is_named(table):
    row = _row(table, "contrastive", "toxic", "toxic_lm")
    assert row["note"] == "missing: `contrastive` has no toxic_lm pairs"
    axis = _row(table, "contrastive", "toxic", "")
    assert axis["note"] == "no kind with enough posts" and axis["posts"] == 0
    entry = preference_entry(table[(table["method"] == "contrastive") & (table["axis"] == "toxic")])
    assert entry["kinds"]["toxic_lm"]["note"] == row["note"] and entry["summed"]["note"] == axis["note"]
    lines = "\n".join(preference_lines(table, "sft", 0.95))
    assert "missing: `contrastive` has no toxic_lm pairs" in lines


def test_the_reference_lacking_a_kind_is_named():
    prefs = {"sft": _pairs("sft", 0.0, with_toxic_lm=False), "contrastive": _pairs("contrastive", 0.0)}
    table = preference_rows(RUNS, METRICS, prefs, CompareConfig(), BOOT, 0)
    assert _row(table, "contrastive", "toxic", "toxic_lm")["note"] == "missing: reference `sft` has no toxic_lm pairs"


def _likes(method: str, shift: np.ndarray) -> pd.DataFrame:
    rows = []
    for i in range(P):
        for kind, role, per_token, n in (("reference", "positive", -2.0, 10), ("backtranslate", "positive", -3.0, 5),
                                         ("swap_ent", "negative", -9.0, 7)):
            rows.append({"post_id": f"p{i}", "method": method, "kind": kind, "role": role, "text": "t",
                         "logprob_sum": (per_token + shift[i]) * n, "n_tokens": n})
    return pd.DataFrame(rows)


def test_likelihood_rows_are_paired_per_token_deltas():
    shift = np.linspace(-0.4, 0.2, P)
    likes = {"sft": _likes("sft", np.zeros(P)), "contrastive": _likes("contrastive", shift)}
    rows = likelihood_rows(RUNS, METRICS, likes, CompareConfig(), BOOT, 0).set_index("method")
    assert rows.loc["sft", "reference"] == pytest.approx(-2.0) and rows.loc["sft", "positives"] == pytest.approx(-2.5)
    c = rows.loc["contrastive"]
    assert c["d_reference"] == pytest.approx(shift.mean()) and c["d_positives"] == pytest.approx(shift.mean())
    se = shift.std(ddof=1) / np.sqrt(P)  # one kind, one seed: the paired SD / sqrt(n)
    assert c["d_reference_se"] == pytest.approx(se) and c["d_reference_mde"] == pytest.approx(2.8015852 * se)
    assert c["d_reference_low"] < shift.mean() < c["d_reference_high"] and c["posts"] == P
    missing = likelihood_rows(RUNS, {"sft": {}, "contrastive": METRICS["contrastive"]}, {"contrastive": likes["sft"]},
                              CompareConfig(), BOOT, 0).set_index("method")
    assert missing.loc["sft", "note"] == "`sft`: not scored (no --groups)"
    assert missing.loc["contrastive", "note"] == "reference `sft` has no likelihoods"


def test_seed_rows_give_each_run_against_the_reference_seed_mean():
    runs = {"sft": [Run("sft", 0), Run("sft-s1", 1)], "contrastive": [Run("contrastive", 0), Run("contrastive-s1", 1)]}
    scores = {name: pd.DataFrame({"post_id": [f"p{i}" for i in range(P)], "toxicity": tox, "faithfulness": 0.5,
                                  "empty": False})
              for name, tox in (("sft", 0.2), ("sft-s1", 0.4), ("contrastive", 0.1), ("contrastive-s1", 0.5))}
    prefs = {"sft": _pairs("sft", 0.0), "sft-s1": _pairs("sft", 0.0), "contrastive": _pairs("contrastive", 1.0),
             "contrastive-s1": _pairs("contrastive", 3.0)}
    table = preference_rows(runs, {r: {} for r in prefs}, prefs, CompareConfig(), BOOT, 0)
    rows = seed_rows(runs, scores, prefs, {}, table, CompareConfig()).set_index("run")
    assert list(rows.index) == ["sft", "sft-s1", "contrastive", "contrastive-s1"]
    assert rows.loc["contrastive", "d_toxicity"] == pytest.approx(0.1 - 0.3)  # vs sft's seed mean 0.3
    assert rows.loc["contrastive-s1", "d_toxicity"] == pytest.approx(0.5 - 0.3)
    assert rows.loc["contrastive-s1", "seed"] == 1
    assert rows.loc["contrastive", "d_margin_entity"] == pytest.approx(0.5)
    assert rows.loc["contrastive-s1", "d_margin_entity"] == pytest.approx(1.5)
    # the method's own row is the seed mean of these: (0.5 + 1.5) / 2
    assert _row(table, "contrastive", "entity", "")["d_margin"] == pytest.approx(1.0)

"""The compare stage on small synthetic metrics files."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from aligntax.config import ConfigError
from aligntax.evaluate.metrics import MetricsConfig, summarize
from aligntax.evaluate.patterns import PATTERNS
from aligntax.io import write_json, write_parquet
from aligntax.methods import load_methods
from aligntax.report.compare import adjust, mde, verdict
from aligntax.schema import SCORES
from stages import compare as stage

N = 30


def _scores(method: str, tox: np.ndarray, faith: np.ndarray, empty_share: float = 0.0) -> pd.DataFrame:
    df = pd.DataFrame({"post_id": [f"p{i}" for i in range(N)], "method": method, "toxicity": tox, "faithfulness": faith,
                       "rouge1": 0.3, "rouge2": 0.1, "rougeL": 0.25, "n_words": 12, "n_tokens": 16, "finished": True,
                       "similarity": 0.6, "entities": 2, "hallucinated_entities": 0})
    for p in PATTERNS:
        df[p] = False
    df.loc[: int(empty_share * N) - 1, "empty"] = True
    return df


@pytest.fixture
def synthetic(tmp_path):
    """sft, a method less toxic AND more faithful (contrastive), one that pays the tax (base)."""
    rng = np.random.default_rng(0)
    tox, faith = rng.uniform(0.1, 0.5, N), rng.uniform(0.3, 0.7, N)
    methods = {
        "base": _scores("base", tox + 0.05, faith - 0.2, empty_share=0.5),
        "sft": _scores("sft", tox, faith),
        "contrastive": _scores("contrastive", tox - 0.05, faith + 0.1),
    }
    for name, df in methods.items():
        write_parquet(df, tmp_path / "eval" / name / "scores.parquet", SCORES)
        write_json({"method": name, **summarize(df, MetricsConfig(), 0)}, tmp_path / "metrics" / f"{name}.json")
    return tmp_path


def _run(monkeypatch, root, methods=("base", "sft", "contrastive"), reference="sft"):
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "methods": {m: f"models/{m}" for m in methods},
                                      "compare": {"reference": reference},
                                      "evaluate": {"metrics": {"n_boot": 500}}}, sort_keys=False))
    out = root / "out"
    monkeypatch.setattr(sys, "argv", [
        "compare", "--params", str(params), "--metrics-dir", str(root / "metrics"), "--eval-dir", str(root / "eval"),
        "--report", str(out / "reports" / "comparison.md"), "--png", str(out / "reports" / "tradeoff.png"),
        "--plot-data", str(out / "tradeoff.json"), "--metrics", str(out / "compare.json")])
    stage.main()
    return out


def test_compare_writes_table_plot_and_key_metrics(monkeypatch, synthetic):
    out = _run(monkeypatch, synthetic)
    key = json.loads((out / "compare.json").read_text())
    assert key["methods"] == 3 and key["posts"] == N
    assert key["sft"]["d_toxicity"] == 0 and key["sft"]["d_faithfulness"] == 0
    assert key["contrastive"]["d_toxicity"] == pytest.approx(-0.05, abs=1e-6)
    assert key["contrastive"]["d_faithfulness"] == pytest.approx(0.1, abs=1e-6)
    # paired deltas: a constant shift has a zero-width interval
    assert key["contrastive"]["d_faithfulness_low"] == pytest.approx(key["contrastive"]["d_faithfulness_high"])
    assert key["base"]["d_faithfulness"] == pytest.approx(-0.2, abs=1e-6) and key["base"]["d_faithfulness_high"] < 0

    report = (out / "reports" / "comparison.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows[:3]] == ["base", "sft", "contrastive"]
    assert "+0.100" in rows[2] and "less toxic, more faithful" in rows[2]
    assert "less faithful (tax)" in rows[0] and "| reference |" in rows[1]
    assert "50%" in rows[3]  # patterns table: base empty share
    assert "![toxicity x faithfulness](tradeoff.png)" in report

    points = json.loads((out / "tradeoff.json").read_text())
    assert [p["method"] for p in points] == ["base", "sft", "contrastive"]
    assert set(points[0]) == {"method", "toxicity", "faithfulness"}
    assert (out / "reports" / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert set(key["seconds"]) == {"total", "read", "compare", "report"}

    def outputs() -> dict:  # every byte, but the stage's own wall seconds
        files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "compare.json"}
        return files | {"compare.json": {k: v for k, v in json.loads((out / "compare.json").read_text()).items()
                                         if k != "seconds"}}

    first = outputs()
    _run(monkeypatch, synthetic)
    assert outputs() == first  # deterministic


def test_reference_must_be_a_method(monkeypatch, synthetic):
    with pytest.raises(ConfigError, match="compare.reference 'sft' is not listed"):
        _run(monkeypatch, synthetic, methods=("base", "contrastive"))
    assert not (synthetic / "out").exists()


def test_missing_method_files_are_one_clear_error(monkeypatch, synthetic):
    with pytest.raises(FileNotFoundError, match="dpo.json: metrics file not found"):
        _run(monkeypatch, synthetic, methods=("sft", "dpo"))
    (synthetic / "metrics" / "base.json").write_text("{}")
    with pytest.raises(ValueError, match="base.json: key 'toxicity' is missing"):
        _run(monkeypatch, synthetic)
    assert not (synthetic / "out").exists()


def test_methods_scored_on_different_posts_are_refused(monkeypatch, synthetic):
    path = synthetic / "eval" / "base" / "scores.parquet"
    write_parquet(pd.read_parquet(path).iloc[:10], path, SCORES)
    with pytest.raises(ValueError, match="base and sft were scored on different eval posts"):
        _run(monkeypatch, synthetic)


def test_methods_mapping_is_validated():
    assert load_methods({"methods": {"sft": "models/sft"}}) == {"sft": "models/sft"}
    for bad in (None, {}, {"Bad Name": "models/x"}, {"sft": ""}):
        with pytest.raises(ConfigError, match="methods"):
            load_methods({"methods": bad})


def test_verdict_counts_only_deltas_significant_after_bh():
    row = pd.Series({"method": "x", "d_toxicity": -0.1, "d_toxicity_q": 0.2, "d_faithfulness": 0.05,
                     "d_faithfulness_q": 0.01})
    assert verdict(row, "sft") == "toxicity ~same, more faithful"
    assert verdict(pd.Series({"method": "sft"}), "sft") == "reference"


def test_bh_adjustment_keeps_a_lone_small_p_from_being_called():
    table = pd.DataFrame({"method": ["sft", "a", "b"], "d_toxicity_p": [1.0, 0.04, 0.9], "d_toxicity_n": [5, 5, 5],
                          "d_faithfulness_p": [1.0, 0.001, 0.8], "d_faithfulness_n": [5, 5, 5],
                          "d_toxicity": [0.0, -0.2, 0.01], "d_faithfulness": [0.0, 0.1, 0.0],
                          "d_toxicity_low": [0.0, -0.3, -0.1], "d_faithfulness_low": [0.0, 0.05, -0.1]})
    # a per-token preference Δ is in the family, its summed twin (same pairs, other unit) is not
    prefs = pd.DataFrame({"method": ["a", "a"], "axis": ["toxic", "toxic"], "unit": ["token", "sum"],
                          "d_margin": [0.1, 0.4], "d_margin_low": [-0.1, 0.1], "d_margin_p": [0.7, 0.0001],
                          "d_margin_n": [5, 5]})
    assert adjust({"table": table, "prefs": prefs}, "sft") == 5
    assert np.isnan(table.loc[0, "d_toxicity_q"])  # the reference is not tested against itself
    # 5 tests: p = 0.001 -> 0.005 (called); p = 0.04 -> 0.04 * 5 / 2 = 0.1 (not called)
    assert table.loc[1, "d_faithfulness_q"] == pytest.approx(0.005)
    assert table.loc[1, "d_toxicity_q"] == pytest.approx(0.1)
    assert verdict(table.loc[1], "sft") == "toxicity ~same, more faithful"
    # p = 0.7 ranks 3rd: min(0.7 * 5/3, 0.8 * 5/4, 0.9 * 5/5) = 0.9
    assert prefs.loc[0, "d_margin_q"] == pytest.approx(0.9) and np.isnan(prefs.loc[1, "d_margin_q"])


def test_mde_is_the_paired_power_formula():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.0, 0.3, 40)
    assert mde(diffs, 0.95) == pytest.approx((1.959964 + 0.841621) * diffs.std(ddof=1) / np.sqrt(40), rel=1e-5)
    assert mde(np.full(10, 0.2), 0.95) == 0.0


def _prefs(method: str, shift: float) -> pd.DataFrame:
    rows = []
    for i in range(N):
        for axis, kind in (("entity", "swap_ent"), ("toxic", "toxic_lexicon"), ("paraphrase", "swap_ent")):
            m = 0.5 + 0.01 * i - (0.6 if i % 3 == 0 else 0.0) + shift
            rows.append({"post_id": f"p{i}", "method": method, "axis": axis, "kind": kind,
                         "good": "paraphrase" if axis == "paraphrase" else "reference",
                         "margin_sum": 2 * m, "margin_mean": m, "margin": m, "preferred": m > 0})
    return pd.DataFrame(rows)


def _likes(method: str, shift: float) -> pd.DataFrame:
    """Per post: the reference (-2 nats/token + shift), a paraphrase (-3 + shift) and a negative."""
    rows = []
    for i in range(N):
        for kind, role, per_token in (("reference", "positive", -2.0), ("backtranslate", "positive", -3.0),
                                      ("swap_ent", "negative", -4.0)):
            n = 8 + i % 5
            rows.append({"post_id": f"p{i}", "method": method, "kind": kind, "role": role, "text": "t",
                         "logprob_sum": (per_token + shift + 0.01 * i) * n, "n_tokens": n})
    return pd.DataFrame(rows)


def test_preference_table_with_cis_mdes_and_not_applicable_methods(monkeypatch, synthetic):
    from aligntax.evaluate.preference import LIKELIHOODS, PREFERENCES

    for name, shift in (("sft", 0.0), ("contrastive", 0.3)):
        write_parquet(_prefs(name, shift), synthetic / "eval" / name / "preferences.parquet", PREFERENCES)
        write_parquet(_likes(name, -2 * shift), synthetic / "eval" / name / "likelihoods.parquet", LIKELIHOODS)
        path = synthetic / "metrics" / f"{name}.json"
        m = json.loads(path.read_text())
        m["preference"] = {"applicable": True}
        write_json(m, path)
    path = synthetic / "metrics" / "base.json"
    write_json({**json.loads(path.read_text()), "preference": {"applicable": False, "reason": "decodes oddly"}}, path)
    out = _run(monkeypatch, synthetic)
    key = json.loads((out / "compare.json").read_text())
    c = key["contrastive"]["pref_toxic"]
    # per token (margin_mean) at the top, summed (margin_sum = 2 x) under `summed`; a constant shift: zero width
    assert c["d_margin"] == pytest.approx(0.3) and c["d_margin_low"] == pytest.approx(0.3) and c["pairs"] == N
    assert c["kinds"]["toxic_lexicon"]["d_margin"] == pytest.approx(0.3) and c["kinds"]["toxic_lexicon"]["posts"] == N
    assert c["averaged"] == ["toxic_lexicon"] and c["summed"]["averaged"] == ["toxic_lexicon"]
    assert c["summed"]["d_margin"] == pytest.approx(0.6) and c["summed"]["kinds"]["toxic_lexicon"]["pairs"] == N
    flipped = sum(1 for i in range(N) if i % 3 == 0 and -0.1 + 0.01 * i <= 0)  # sft wrong, contrastive right
    sft_accuracy = 1 - sum(1 for i in range(N) if i % 3 == 0 and -0.1 + 0.01 * i <= 0) / N
    assert flipped == 4 and c["accuracy"] == pytest.approx(1.0) and \
        key["sft"]["pref_toxic"]["accuracy"] == pytest.approx(sft_accuracy, abs=1e-4)
    assert key["base"]["pref"] == {"note": "`base`: not applicable: decodes oddly"}
    # the references' likelihood: -2 nats/token (+ 0.01 i) for sft, 0.6 less for contrastive
    like = key["contrastive"]["likelihood"]
    assert key["sft"]["likelihood"]["reference"] == pytest.approx(-2 + 0.01 * (N - 1) / 2)
    assert like["d_reference"] == pytest.approx(-0.6) and like["d_positives"] == pytest.approx(-0.6)
    assert key["contrastive"]["likelihood"]["positives"] == pytest.approx(-2.5 - 0.6 + 0.01 * (N - 1) / 2)
    assert like["posts"] == N and like["d_reference_q"] == 0.0
    report = (out / "reports" / "comparison.md").read_text()
    assert "## Likelihood preferences per negative kind" in report and "## The references' likelihood" in report
    assert "`base`: no preferences (`base`: not applicable: decodes oddly)." in report
    row = next(line for line in report.splitlines() if line.startswith("| `contrastive` | 1 | **axis** (swap_ent) |"))
    assert "**+0.300 [+0.300, +0.300]** | ±0.000" in row
    row = next(line for line in report.splitlines() if line.startswith("| `contrastive` | 1 | 30 | -2.4"))
    assert "**-0.600 [-0.600, -0.600]**" in row


def test_toxicity_over_non_empty_outputs_with_the_empty_rate(monkeypatch, synthetic):
    out = _run(monkeypatch, synthetic)
    key = json.loads((out / "compare.json").read_text())
    base = pd.read_parquet(synthetic / "eval" / "base" / "scores.parquet")
    said = ~base["empty"]
    assert key["base"]["empty_rate"] == 0.5
    assert key["base"]["toxicity"] == pytest.approx(base.loc[said, "toxicity"].mean(), abs=1e-4)
    assert key["base"]["d_toxicity"] == pytest.approx(0.05, abs=1e-4)  # over posts where both said something
    report = (out / "reports" / "comparison.md").read_text()
    assert "toxicity, non-empty" in report and "| `sft` |" in report
    sft_row = next(line for line in report.splitlines() if line.startswith("| `sft` |"))
    assert sft_row.count("reference") == 3 and "+0.000" not in sft_row


def test_header_names_the_instruments(monkeypatch, synthetic):
    scorers = {"toxicity": {"ensemble": {"overall": {"roc_auc": 0.959, "n": 1193},
                                         "by_source": {"jigsaw": {"roc_auc": 0.97}}}},
               "faithfulness": {"ensemble": {"overall": {"roc_auc": 0.861, "n": 500}, "by_source": {},
                                             "entity_swap": {"pairwise_accuracy": 0.69, "n_pairs": 59}}}}
    write_json(scorers, synthetic / "scorers.json")
    monkeypatch.setattr(sys, "argv", sys.argv)
    params = synthetic / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "methods": {"sft": "models/sft"}, "evaluate": {"metrics": {"n_boot": 200}}}))
    out = synthetic / "out2"
    monkeypatch.setattr(sys, "argv", [
        "compare", "--params", str(params), "--metrics-dir", str(synthetic / "metrics"),
        "--eval-dir", str(synthetic / "eval"), "--scorers-metrics", str(synthetic / "scorers.json"),
        "--report", str(out / "c.md"), "--png", str(out / "t.png"), "--plot-data", str(out / "t.json"),
        "--metrics", str(out / "c.json")])
    stage.main()
    report = (out / "c.md").read_text()
    assert "`ensemble`, held-out ROC-AUC 0.96 (n=1193; jigsaw 0.97)" in report
    assert "ROC-AUC 0.86 (n=500); prefers the true summary over an entity swap in 69% of 59 pairs" in report
    assert "lexical support of the summary by the post" in report


def test_seeded_methods_are_seed_means_with_per_seed_rows(monkeypatch, synthetic):
    """sft and contrastive with one extra seed each: contrastive's seeds lie far apart, so its interval
    (seeds and posts resampled) is wide although its per-post shift is constant."""
    from pathlib import Path

    from aligntax.config import read_params

    rng = np.random.default_rng(3)
    tox, faith = rng.uniform(0.1, 0.5, N), rng.uniform(0.3, 0.7, N)
    for name, df in (("sft-s1", _scores("sft-s1", tox, faith)), ("contrastive", _scores("contrastive", tox, faith + 0.3)),
                     ("contrastive-s1", _scores("contrastive-s1", tox, faith - 0.1))):
        write_parquet(df, synthetic / "eval" / name / "scores.parquet", SCORES)
        write_json({"method": name, **summarize(df, MetricsConfig(), 0)}, synthetic / "metrics" / f"{name}.json")
    write_parquet(_scores("sft", tox, faith), synthetic / "eval" / "sft" / "scores.parquet", SCORES)
    write_json({"method": "sft", **summarize(_scores("sft", tox, faith), MetricsConfig(), 0)},
               synthetic / "metrics" / "sft.json")
    trained = {m: read_params(Path(__file__).resolve().parents[2] / "params.yaml")["trained"][m] for m in ("sft", "contrastive")}
    params = synthetic / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "methods": {"sft": "models/sft", "contrastive": "models/contrastive"},
                                      "trained": trained, "seeds": {"methods": ["sft", "contrastive"], "extra": [1]},
                                      "evaluate": {"metrics": {"n_boot": 500}}}, sort_keys=False))
    out = synthetic / "out"
    monkeypatch.setattr(sys, "argv", [
        "compare", "--params", str(params), "--metrics-dir", str(synthetic / "metrics"),
        "--eval-dir", str(synthetic / "eval"), "--report", str(out / "c.md"), "--png", str(out / "t.png"),
        "--plot-data", str(out / "t.json"), "--metrics", str(out / "c.json")])
    stage.main()
    key = json.loads((out / "c.json").read_text())
    c = key["contrastive"]
    assert c["seeds"] == 2 and c["runs"] == ["contrastive", "contrastive-s1"]
    assert c["d_faithfulness"] == pytest.approx(0.1, abs=1e-4)  # (+0.3 - 0.1) / 2
    assert c["d_faithfulness_high"] - c["d_faithfulness_low"] > 0.2  # the seeds' spread, not 0 as one seed gives
    assert [(r["run"], r["seed"], r["d_faithfulness"]) for r in c["per_seed"]] == [
        ("contrastive", 0, pytest.approx(0.3, abs=1e-4)), ("contrastive-s1", 1, pytest.approx(-0.1, abs=1e-4))]
    report = (out / "c.md").read_text()
    assert "**Seeds**: `sft`, `contrastive` are means over their training seeds" in report
    assert "## Seeds" in report and "| `contrastive` | `contrastive-s1` | 1 | +0.000 | -0.100 |" in report
    assert next(line for line in report.splitlines() if line.startswith("| `contrastive` | 2 (mean) |"))
    (synthetic / "metrics" / "contrastive-s1.json").unlink()  # a seed's run missing: its own stage is named
    with pytest.raises(FileNotFoundError, match=r"contrastive-s1.json: .* `dvc repro evaluate-seed@contrastive-1`"):
        stage.main()

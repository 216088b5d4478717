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
from aligntax.report.compare import load_methods, verdict
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

    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _run(monkeypatch, synthetic)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first  # deterministic


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


def test_verdict_counts_only_intervals_that_exclude_zero():
    row = pd.Series({"method": "x", "d_toxicity_low": -0.1, "d_toxicity_high": 0.05,
                     "d_faithfulness_low": 0.01, "d_faithfulness_high": 0.2})
    assert verdict(row, "sft") == "toxicity ~same, more faithful"

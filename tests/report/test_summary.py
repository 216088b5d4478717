"""The curated metrics (metrics/summary.json): rounding, deltas, preferences, training losses, errors."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from aligntax.config import ConfigError
from aligntax.report.summary import CURVE, SummaryConfig, preference_values, rounded, summarize, table, training_curves
from stages import summarize as stage

COMPARED = {
    "methods": 3, "posts": 24,
    "sft": {"toxicity": 0.184766, "d_toxicity": 0.0, "faithfulness": 0.436178, "d_faithfulness": 0.0, "rougeL": 0.13},
    "contrastive": {"toxicity": 0.124696, "d_toxicity": -0.060069, "faithfulness": 0.402439,
                    "d_faithfulness": -0.033739, "d_faithfulness_low": -0.09, "share_toxic": 0.04},
    "base": {"toxicity": 0.1280651, "d_toxicity": -4e-17, "faithfulness": 0.498052, "d_faithfulness": 0.061874},
}


def test_rounded_normalises_negative_zero_and_noise():
    assert rounded(-0.00004, 3) == 0.0 and str(rounded(-0.00004, 3)) == "0.0"
    assert rounded(0.1234999, 3) == 0.123
    assert rounded(0.40243882180671386, 3) == rounded(0.40243882180671386 + 1e-16, 3)


def test_summary_keeps_only_curated_keys_rounded():
    trained = {"contrastive": {"train_loss": 9.168281614780426, "ce_last": 4.1371990740299225, "w_posts_mean": 1.5,
                               "seconds": {"total": 80.2, "train": 71.4}, "steps": 32}}
    out = summarize(["sft", "contrastive", "base"], COMPARED, {}, trained, "sft", SummaryConfig(digits=3))
    assert list(out) == ["sft", "contrastive", "base"]
    assert out["sft"] == {"tox": 0.185, "faith": 0.436}  # the reference has no deltas (0 by construction)
    assert out["contrastive"] == {"tox": 0.125, "faith": 0.402, "d_tox": -0.06, "d_faith": -0.034,
                                  "loss": 9.168, "ce": 4.137, "w": 1.5}
    assert out["base"]["d_tox"] == 0.0 and str(out["base"]["d_tox"]) == "0.0"
    coarse = summarize(["sft", "contrastive", "base"], COMPARED, {}, {}, "sft", SummaryConfig(digits=1))
    assert coarse["contrastive"] == {"tox": 0.1, "faith": 0.4, "d_tox": -0.1, "d_faith": 0.0}


def test_preferences_are_picked_up_generically():
    pref = {"applicable": True, "rows": {"groups": 37}, "normalisation": {"entity": "sum"},
            "axes": {"entity": {"pairs": 48, "posts": 30, "accuracy": 0.8751, "margin": 1.23456, "ci_low": 0.7,
                                "d_accuracy": -0.0001, "d_accuracy_high": 0.1, "mde": 0.12,
                                "kinds": {"swap_ent": {"pairs": 20, "accuracy": 0.9}}},
                     "toxic": {"pairs": 20, "accuracy": 0.61}, "paraphrase": {"pairs": 0, "posts": 0}}}
    assert preference_values(pref, 3) == {"axes": {"entity": {"accuracy": 0.875, "margin": 1.235, "d_accuracy": 0.0},
                                                   "toxic": {"accuracy": 0.61}}}
    out = summarize(["sft", "contrastive", "base"], COMPARED, {"contrastive": {"preference": pref}}, {}, "sft",
                    SummaryConfig())
    assert out["contrastive"]["pref"]["axes"]["entity"]["accuracy"] == 0.875
    assert "pref" not in out["sft"]


def test_compare_preference_groups_win_over_the_evaluate_object():
    compared = {**COMPARED, "contrastive": {
        **COMPARED["contrastive"],
        "pref_entity": {"pairs": 48, "accuracy": 0.8125, "margin": 2.1234, "d_accuracy": 0.0625, "d_margin": 0.5511,
                        "d_margin_low": 0.1, "d_margin_high": 0.9, "d_margin_mde": 0.3},
        "pref_toxic": {"pairs": 0, "accuracy": None}}}
    evaluated = {"contrastive": {"preference": {"axes": {"entity": {"accuracy": 0.8125}}}}}
    out = summarize(["sft", "contrastive", "base"], compared, evaluated, {}, "sft", SummaryConfig())
    assert out["contrastive"]["pref_entity"] == {"accuracy": 0.812, "margin": 2.123, "d_accuracy": 0.062,
                                                 "d_margin": 0.551}
    assert "pref" not in out["contrastive"] and "pref_toxic" not in out["contrastive"]


def test_summary_errors_name_the_fix():
    with pytest.raises(ValueError, match="'inlp'.*dvc repro compare"):
        summarize(["sft", "inlp"], COMPARED, {}, {}, "sft", SummaryConfig())
    with pytest.raises(ValueError, match="compare.reference 'dpo'"):
        summarize(["sft"], COMPARED, {}, {}, "dpo", SummaryConfig())
    broken = {"sft": COMPARED["sft"], "base": {"toxicity": 0.1, "faithfulness": "high"}}
    with pytest.raises(ValueError, match="'base' lack a number 'faithfulness'"):
        summarize(["sft", "base"], broken, {}, {}, "sft", SummaryConfig())
    with pytest.raises(ValueError, match="'base' lack a number 'd_tox"):
        summarize(["sft", "base"], {"sft": COMPARED["sft"], "base": {"toxicity": 0.1, "faithfulness": 0.2}}, {}, {},
                  "sft", SummaryConfig())


def test_an_undefined_toxicity_stays_null():
    """Every generation empty: compare writes toxicity null (no text to score); the summary keeps it null."""
    compared = {"sft": COMPARED["sft"], "instructive": {"toxicity": None, "d_toxicity": None, "faithfulness": 0.0,
                                                        "d_faithfulness": -0.436}}
    out = summarize(["sft", "instructive"], compared, {}, {}, "sft", SummaryConfig())
    assert out["instructive"] == {"tox": None, "faith": 0.0, "d_tox": None, "d_faith": -0.436}
    assert table(out).splitlines()[2].split()[1:5] == ["-", "0.000", "-", "-0.436"]
    with pytest.raises(ConfigError, match="summary.digits"):
        SummaryConfig(digits=0)


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_stage_writes_summary_and_curves_from_files(tmp_path, monkeypatch):
    params = {"seed": 0, "methods": {"sft": "models/sft", "contrastive": "models/contrastive", "base": "models/base"},
              "trained": {m: {"module": f"aligntax/train/{m}.py", "section": "train", "data": "d.parquet"}
                          for m in ("sft", "contrastive")},
              "compare": {"reference": "sft"}, "summary": {"digits": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))  # curves in `trained` order
    _write(tmp_path / "compare.json", COMPARED)
    for m in params["methods"]:
        _write(tmp_path / "evaluate" / f"{m}.json", {"n": 24, "toxicity": {"mean": 0.1}})
    _write(tmp_path / "train" / "sft.json", {"train_loss": 3.9604, "ce_last": 4.1033, "seconds": {"total": 80.0}})
    _write(tmp_path / "train" / "contrastive.json", {"train_loss": 9.1683})
    for m, losses in (("sft", "4.19\n4.15\n"), ("contrastive", "9.3\n")):
        curve = tmp_path / "live" / f"train_{m}" / "plots" / "metrics" / "train" / "loss.tsv"
        curve.parent.mkdir(parents=True)
        curve.write_text("step\tloss\n" + "".join(f"{2 * (i + 1)}\t{v}\n" for i, v in enumerate(losses.split())))
    out = tmp_path / "summary.json"
    monkeypatch.setattr(sys, "argv", [
        "summarize", "--params", str(tmp_path / "params.yaml"), "--compare", str(tmp_path / "compare.json"),
        "--evaluate-dir", str(tmp_path / "evaluate"), "--train-dir", str(tmp_path / "train"),
        "--live-dir", str(tmp_path / "live"), "--out", str(out), "--curves", str(tmp_path / "curves.json"),
        "--metrics", str(tmp_path / "run.json")])
    stage.main()
    data = json.loads(out.read_text())
    assert data["sft"] == {"tox": 0.18, "faith": 0.44, "loss": 3.96, "ce": 4.1}
    assert data["contrastive"] == {"tox": 0.12, "faith": 0.4, "d_tox": -0.06, "d_faith": -0.03, "loss": 9.17}
    assert json.loads((tmp_path / "curves.json").read_text()) == [
        {"method": "sft", "step": 2, "loss": 4.19}, {"method": "sft", "step": 4, "loss": 4.15},
        {"method": "contrastive", "step": 2, "loss": 9.3}]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["curve_points"] == 3 and set(run["seconds"]) == {"total", "read"}
    (tmp_path / "train" / "contrastive.json").unlink()  # a trained, evaluated method must have its metrics
    with pytest.raises(FileNotFoundError, match="contrastive.json.*dvc repro train@contrastive"):
        stage.main()
    _write(tmp_path / "train" / "contrastive.json", {"train_loss": 9.1683})
    (tmp_path / "evaluate" / "base.json").unlink()
    with pytest.raises(FileNotFoundError, match="base.json.*dvc repro evaluate@base"):
        stage.main()


def test_a_curve_without_a_loss_column_is_one_clear_error(tmp_path):
    curve = tmp_path / "train_sft" / CURVE
    curve.parent.mkdir(parents=True)
    curve.write_text("step\tce\n2\t4.1\n")
    with pytest.raises(ValueError, match="loss.tsv: expected columns step and loss.*dvc repro train@sft"):
        training_curves(tmp_path, ["sft"])
    with pytest.raises(FileNotFoundError, match="train_dpo.*dvc repro train@dpo"):
        training_curves(tmp_path, ["dpo"])


def test_table_has_one_aligned_row_per_method():
    out = summarize(["sft", "contrastive", "base"], COMPARED, {}, {"sft": {"train_loss": 3.96}}, "sft", SummaryConfig())
    lines = table(out).splitlines()
    assert [line.split()[0] for line in lines] == ["method", "sft", "contrastive", "base"]
    assert lines[2].split()[1:5] == ["0.125", "0.402", "-0.060", "-0.034"]
    assert lines[1].split()[3:8] == ["-", "-", "-", "-", "3.960"]
    assert len({len(line) for line in lines}) == 1 and len(lines[0]) < 100


def test_references_likelihood_and_per_kind_preferences_reach_the_summary():
    like = {"note": "", "posts": 24, "reference": -2.01234, "positives": -2.51, "d_reference": -0.61789,
            "d_reference_low": -0.8, "d_reference_mde": 0.1, "d_reference_p": 0.001, "d_reference_q": 0.004,
            "d_positives": -0.4}
    pref = {"pairs": 40, "margin": 0.2345, "d_margin": 0.0512, "d_margin_se": 0.02, "d_margin_p": 0.01,
            "d_margin_q": 0.03, "d_margin_low": 0.01, "summed": {"margin": 2.5, "d_margin": 0.4},
            "kinds": {"swap_ent": {"posts": 24, "d_margin": 0.0201}, "sys_lowcon": {"note": "too few: 3 posts (< 5)"}}}
    compared = {**COMPARED, "sft": {**COMPARED["sft"], "likelihood": {"reference": -1.4, "positives": -1.9}},
                "contrastive": {**COMPARED["contrastive"], "likelihood": like, "pref_entity": pref}}
    out = summarize(["sft", "contrastive", "base"], compared, {}, {}, "sft", SummaryConfig())
    assert out["sft"] == {"tox": 0.185, "faith": 0.436, "ll_ref": -1.4, "ll_pos": -1.9}
    c = out["contrastive"]
    assert (c["ll_ref"], c["ll_pos"], c["d_ll_ref"], c["d_ll_pos"]) == (-2.012, -2.51, -0.618, -0.4)
    # intervals, SEs, p and q values are run facts; per-kind Δs and the summed unit stay
    assert c["pref_entity"] == {"margin": 0.234, "d_margin": 0.051, "kinds": {"swap_ent": {"d_margin": 0.02}},
                                "summed": {"margin": 2.5, "d_margin": 0.4}}
    lines = table(out).splitlines()
    assert lines[0].split()[5:7] == ["ll_ref", "d_ll_ref"] and lines[2].split()[5:7] == ["-2.012", "-0.618"]
    assert lines[lines.index("") + 1].split() == ["method", "preference", "margin", "d_margin"]


def test_table_lists_preference_axes_per_method():
    out = {"sft": {"tox": 0.1, "faith": 0.4, "pref_entity": {"accuracy": 0.8, "d_margin": 0.0}},
           "contrastive": {"tox": 0.1, "faith": 0.4, "d_tox": 0.0, "d_faith": 0.0,
                           "pref_entity": {"accuracy": 0.875, "d_margin": 0.55}, "pref_toxic": {"accuracy": 0.5}}}
    lines = table(out).splitlines()
    block = lines[lines.index("") + 1:]
    assert block[0].split() == ["method", "preference", "accuracy", "d_margin"]
    assert [row.split() for row in block[1:]] == [["sft", "entity", "0.800", "0.000"],
                                                  ["contrastive", "entity", "0.875", "0.550"],
                                                  ["contrastive", "toxic", "0.500", "-"]]


def test_dvc_yaml_declares_only_the_summary_as_metrics():
    """Run facts (seconds, counts, CIs) stay committed outputs; `dvc metrics` reads the curated file only."""
    dvc = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())
    assert dvc["metrics"] == ["metrics/summary.json"]
    bodies = {name: body.get("do", body) for name, body in dvc["stages"].items()}
    assert [name for name, body in bodies.items() if "metrics" in body] == []
    for name, body in bodies.items():
        for out in body.get("outs", []):
            path, opts = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if path.startswith("metrics/"):
                assert opts.get("cache") is False, f"{name}: {path} must be committed (cache: false)"

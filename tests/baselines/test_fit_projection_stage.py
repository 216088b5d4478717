"""stages/fit_projection.py: one stage script fits any method under `fitted:` and writes model + metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aligntax import cli
from stages import fit_projection

ROOT = Path(__file__).resolve().parents[2]

RAW = pd.DataFrame({"id": ["a", "b"], "subreddit": ["tifu"] * 2, "title": ["t"] * 2,
                    "post": ["my mom called my dad and he laughed.", "the priest met the rabbi at the church."],
                    "summary": ["mom called dad", "priest met rabbi"]})
SECTIONS = {"inlp": {"axes": ["gender", "religion"], "n_iterations": 2, "max_corpus_contexts": 10, "batch_size": 64},
            "sentence_debias": {"n_components": 1, "max_corpus_contexts": 10, "batch_size": 64}}


@pytest.mark.parametrize("method", sorted(SECTIONS))
def test_fit_projection_stage_writes_model_and_metrics(method, tiny_llama_dir, tmp_path, monkeypatch):
    RAW.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny").symlink_to(tiny_llama_dir)
    monkeypatch.chdir(tmp_path)  # the entry's model folder is a path inside the project
    monkeypatch.syspath_prepend(str(ROOT))  # its module too: aligntax/baselines/<method>.py
    fitted = {method: {"module": f"aligntax/baselines/{method}.py", "section": method, "model": "models/tiny"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "fitted": fitted, method: SECTIONS[method]}))
    monkeypatch.setattr(sys, "argv", [  # --model: the entry's model folder
        "fit_projection", "--method", method, "--params", str(tmp_path / "params.yaml"),
        "--train", str(tmp_path / "train.parquet"), "--out", str(tmp_path / method), "--metrics", str(tmp_path / "m.json")])
    cli.run(fit_projection.main)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["method"] == method and metrics["rows"] == {"posts_read": 2} and metrics["rank_removed"] > 0
    assert metrics["model"] == "models/tiny" and set(metrics["seconds"]) == {"total", "load", "fit", "save"}
    assert (tmp_path / method / "projection.safetensors").is_file()
    assert (tmp_path / method / "model.safetensors").is_file()


def test_a_method_not_under_fitted_is_one_clear_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "fitted": {}}))
    monkeypatch.setattr(sys, "argv", ["fit_projection", "--method", "inlp", "--params", str(tmp_path / "params.yaml")])
    with pytest.raises(SystemExit):
        cli.run(fit_projection.main)
    assert "no method 'inlp' under 'fitted' (have: none)" in capsys.readouterr().err

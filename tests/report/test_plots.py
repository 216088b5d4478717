"""The declared DVC plots: method-labelled templates, curves of every trained method, an offline page."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from aligntax.config import read_params
from aligntax.methods import trained_names
from aligntax.report.summary import training_curves

ROOT = Path(__file__).resolve().parents[2]


def _plots(tmp_path: Path) -> dict:
    """`dvc plots show --json` on a copy of the project's plot files, the curves gathered as summarize does."""
    for rel in ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", "metrics/tradeoff.json", "dvclive"):
        src, dst = ROOT / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    curves = training_curves(tmp_path / "dvclive", trained_names(read_params(tmp_path / "params.yaml")))
    (tmp_path / "metrics" / "train_curves.json").write_text(json.dumps(curves))
    out = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=120)
    return {name: specs[0]["content"] for name, specs in json.loads(out.stdout)["data"].items()}


def test_the_curves_are_one_file_that_summarize_writes():
    """No per-method list in dvc.yaml: summarize gathers every trained method's curve into one table."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    curves = next(p for entry in dvc["plots"] for name, p in entry.items() if name.startswith("Training loss"))
    assert curves["y"] == {"metrics/train_curves.json": "loss"} and curves["x"] == "step"
    summarize = dvc["stages"]["summarize"]
    assert "--curves metrics/train_curves.json" in summarize["cmd"] and "dvclive" in summarize["deps"]
    assert {"metrics/train_curves.json": {"persist": True, "cache": False}} in summarize["outs"]


def test_rendered_specs_name_the_method(tmp_path):
    plots = _plots(tmp_path)
    trained = set(trained_names(read_params(ROOT / "params.yaml")))
    scatter = next(spec for name, spec in plots.items() if name.startswith("Toxicity x faithfulness"))
    points, labels = scatter["layer"]
    assert {"field": "method", "type": "nominal", "title": "method"} in points["encoding"]["tooltip"]
    assert labels["mark"]["type"] == "text" and labels["encoding"]["text"]["field"] == "method"
    assert scatter["encoding"]["color"]["field"] == "method"
    assert {row["method"] for row in scatter["data"]["values"]} >= trained
    curves = next(spec for name, spec in plots.items() if name.startswith("Training loss"))
    assert curves["facet"]["field"] == "method" and curves["spec"]["encoding"]["color"]["field"] == "method"
    assert {row["method"] for row in curves["data"]["values"]} == trained


def test_offline_page_inlines_vega_and_loads_nothing():
    page = (ROOT / ".dvc" / "plots" / "offline.html").read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE) is None
    for build in ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"):
        assert f"/* {build} */" in page
    assert "BSD-3-Clause" in (ROOT / "LICENSES" / "vega-js.txt").read_text()
    # plain `dvc plots show` uses it (the path is relative to .dvc/)
    assert "html_template = plots/offline.html" in (ROOT / ".dvc" / "config").read_text()

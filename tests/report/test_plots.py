"""The declared DVC plots: method-labelled templates, curves of every trained method, an offline page."""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAINED = {"sft", "contrastive", "cda", "dropout", "dpo", "unlikelihood"}


def _plots() -> dict:
    out = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    return {name: specs[0]["content"] for name, specs in json.loads(out.stdout)["data"].items()}


def test_every_trained_method_has_a_declared_curve():
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    curves = next(p for entry in plots for name, p in entry.items() if name.startswith("Training loss"))
    methods = {Path(path).parts[1].removeprefix("train_") for path in curves["y"]}
    assert methods == TRAINED and curves["x"] == "step"


def test_rendered_specs_name_the_method():
    plots = _plots()
    scatter = next(spec for name, spec in plots.items() if name.startswith("Toxicity x faithfulness"))
    points, labels = scatter["layer"]
    assert {"field": "method", "type": "nominal", "title": "method"} in points["encoding"]["tooltip"]
    assert labels["mark"]["type"] == "text" and labels["encoding"]["text"]["field"] == "method"
    assert scatter["encoding"]["color"]["field"] == "method"
    assert {row["method"] for row in scatter["data"]["values"]} >= TRAINED
    curves = next(spec for name, spec in plots.items() if name.startswith("Training loss"))
    assert curves["facet"]["field"] == "method" and curves["spec"]["encoding"]["color"]["field"] == "method"
    files = {row["filename"] for row in curves["data"]["values"]}
    assert any("train_sft/" in f for f in files)


def test_offline_page_inlines_vega_and_loads_nothing():
    page = (ROOT / ".dvc" / "plots" / "offline.html").read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE) is None
    for build in ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js"):
        assert f"/* {build} */" in page
    assert "BSD-3-Clause" in (ROOT / "LICENSES" / "vega-js.txt").read_text()
    # plain `dvc plots show` uses it (the path is relative to .dvc/)
    assert "html_template = plots/offline.html" in (ROOT / ".dvc" / "config").read_text()

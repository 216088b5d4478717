"""scripts/ablation.py: the grid file, experiment states from `dvc exp show --json`, the selection
criterion, and queue/run/report end to end on a tiny DVC project whose one stage writes metrics in
this project's layout (metrics/compare.json, metrics/train/<run>.json) from its params."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aligntax.config import read_params
from scripts import ablation
from scripts.ablation import Row, choose, collect, load_grid, read_show, verdict

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ | {"DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT), "GIT_AUTHOR_NAME": "t",
                    "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
PARAMS = """\
seed: 0
methods: {sft: models/sft, contrastive: models/contrastive, dpo: models/dpo}
loss: {alpha: 16.0, scale: none}
dpo: {beta: 0.1}
seeds: {methods: [sft, contrastive], extra: [1, 2]}
evaluate: {metrics: {confidence: 0.95}}
"""
# contrastive's toxic Δ margin is alpha / 1000 (CI ± 0.001); dpo's toxic margin level 0.5 + beta and its
# reference log-likelihood -3.7 - beta: beta 0.1 sits exactly 0.1 nats from sft's, 0.5 far outside.
STAGE = """\
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
alpha, beta, seeded = p["loss"]["alpha"], p["dpo"]["beta"], p["seeds"]["methods"]
def d(key, v, half, mde=0.01):
    return {key: v, key + "_low": round(v - half, 4), key + "_high": round(v + half, 4), key + "_mde": mde}
out = {"methods": 3, "posts": 24}
for m in ("sft", "contrastive", "dpo"):
    runs = [m] + ([f"{m}-s{s}" for s in p["seeds"]["extra"]] if m in seeded else [])
    t = alpha / 1000 if m == "contrastive" else 0.002
    out[m] = {"seeds": len(runs), "runs": runs, **d("d_toxicity", -0.01, 0.09, 0.167),
              **d("d_faithfulness", 0.0, 0.05, 0.095),
              "pref_toxic": {"margin": 0.5 + beta if m == "dpo" else 0.47, **d("d_margin", t, 0.001, 0.0206),
                             "kinds": {"toxic_lm": d("d_margin", -0.03, 0.02), "toxic_lexicon": d("d_margin", 0.05, 0.01)}},
              "pref_entity": {"margin": 0.28, **d("d_margin", 0.002, 0.012, 0.017),
                              "kinds": {"swap_ent": d("d_margin", 0.017, 0.015)}},
              "likelihood": {"reference": round(-3.7 - beta, 4) if m == "dpo" else -3.7, **d("d_reference", -0.02, 0.01)}}
    for run in runs:
        path = pathlib.Path("metrics/train", run + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": {"total": 10.0 + len(run)}}))
json.dump(out, open("metrics/compare.json", "w"))
"""
DVC_YAML = """\
stages:
  fake:
    cmd: {python} fake.py
    deps: [fake.py]
    params: [loss, dpo, seeds]
    outs:
      - metrics/compare.json: {{cache: false}}
      - metrics/train: {{cache: false}}
"""
GRID = """\
rows:
  - {name: full, method: contrastive, sets: []}
  - {name: alpha_4, method: contrastive, sets: [loss.alpha=4]}
  - {name: scale_static, method: contrastive, sets: [loss.scale=static]}
  - {name: sft, method: sft, sets: []}
  - {name: dpo, method: dpo, sets: ["seeds.methods=[sft,contrastive,dpo]"]}
  - {name: dpo_beta_0.5, method: dpo, sets: ["seeds.methods=[sft,contrastive,dpo]", dpo.beta=0.5]}
select: {methods: [dpo], reference: sft, window: 0.1}
"""


def _run(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == ok, f"{' '.join(cmd)}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _ablation(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return _run(cwd, sys.executable, "-m", "scripts.ablation", *args, ok=ok)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The tiny project, its baseline committed, and the rows alpha_4, dpo, dpo_beta_0.5 run (not scale_static)."""
    root = tmp_path_factory.mktemp("grid")
    (root / "params.yaml").write_text(PARAMS)
    (root / "fake.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    (root / "configs").mkdir()
    (root / "configs" / "ablation.yaml").write_text(GRID)
    _run(root, "git", "init", "-q")
    _run(root, "dvc", "init", "-q")
    _run(root, "dvc", "repro", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "baseline")
    _ablation(root, "run", "--rows", "alpha_4,dpo,dpo_beta_0.5")
    return root


def _line(text: str, row: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| `{row}` |"))


def test_report_rows_numbers_selection_and_same_bytes(project):
    _ablation(project, "report")
    md, png = (project / "reports" / "ablation.md").read_bytes(), (project / "reports" / "ablation.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    _ablation(project, "report")
    assert (project / "reports" / "ablation.md").read_bytes() == md
    assert (project / "reports" / "ablation.png").read_bytes() == png
    text = md.decode()
    full, alpha = _line(text, "full"), _line(text, "alpha_4")
    assert "baseline `" in full and "| contrastive | 3 | +0.0160 [+0.0150, +0.0170] |" in full
    assert "| abl-alpha_4 `" in alpha and "| `loss.alpha=4` |" in alpha
    assert "| +0.0040 [+0.0030, +0.0050] | +0.0020 [-0.0100, +0.0140] |" in alpha
    assert alpha.endswith("| 69 (3 runs) |")  # 10 + len(run) seconds of contrastive, contrastive-s1, -s2
    assert "| dpo | 3 |" in _line(text, "dpo")  # seeds.methods given as a list through -S
    assert "| dpo | 1 |" not in text
    assert "not run" in _line(text, "scale_static")
    assert "- `alpha_4` (contrastive, 3 seeds): toxic margin Δ vs sft +0.0040 [+0.0030, +0.0050]: CI excludes 0 " \
           "(above sft); entity margin Δ vs sft +0.0020 [-0.0100, +0.0140]: not resolved at this budget (MDE ±0.0170)" \
           in text
    # dpo_beta_0.5 has the higher toxic margin (1.0 vs 0.6) but its likelihood is 0.5 nats from sft's
    assert "- **dpo**: `dpo`: the highest toxic margin of the 1 setting(s) within 0.1 nats/token of sft." in text
    assert "| dpo | `dpo_beta_0.5` |" in text and "| +1.0000 | -4.2000 | -0.5000 | no |" in text


def test_run_and_queue_skip_what_exists_and_queue_what_is_missing(project):
    assert "nothing to run" in _ablation(project, "run", "--rows", "alpha_4,dpo").stdout
    try:
        queued = _ablation(project, "queue", "--rows", "scale_static,alpha_4")
        assert "queued abl-scale_static: loss.scale=static" in queued.stdout
        assert "abl-alpha_4" not in queued.stdout and "dvc queue start -j 1" in queued.stdout
        _, found = read_show(json.loads(_run(project, "dvc", "exp", "show", "--json").stdout))
        assert found["abl-scale_static"].state == "queued"
        assert "nothing to run" in _ablation(project, "queue", "--rows", "scale_static").stdout
        _ablation(project, "report", "--out", "q.md", "--figure", "q.png")
        assert "not run (queued)" in _line((project / "q.md").read_text(), "scale_static")
    finally:
        _run(project, "dvc", "queue", "remove", "--all")


def test_errors_are_one_line(project, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "params.yaml").write_text(PARAMS)
    (bare / "configs").mkdir()
    (bare / "configs" / "ablation.yaml").write_text(GRID)
    _run(bare, "git", "init", "-q")
    done = _ablation(bare, "report", ok=False)
    assert done.stderr.startswith("error: `dvc exp show --json --rev HEAD` failed: you are not inside of a DVC repository")
    assert len(done.stderr.strip().splitlines()) == 1
    try:  # a row must be the baseline commit plus its sets, and the baseline complete
        (project / "params.yaml").write_text(PARAMS.replace("alpha: 16.0", "alpha: 8.0"))
        assert "error: params.yaml or dvc.yaml differs from the last commit" in _ablation(project, "run", ok=False).stderr
        _run(project, "git", "checkout", "--", "params.yaml")
        (project / "fake.py").write_text(STAGE + "\n")
        assert _ablation(project, "queue", ok=False).stderr.startswith(
            "error: the baseline is not up to date (`dvc status` lists 1 stage(s), e.g. fake)")
    finally:
        _run(project, "git", "checkout", "--", "params.yaml", "fake.py")
    done = _ablation(project, "queue", "--rows", "alpha_5", ok=False)
    assert done.stderr.startswith("error: --rows: unknown row 'alpha_5'; the rows of the grid: full, alpha_4")
    (bare / "configs" / "ablation.yaml").write_text(GRID.replace("loss.alpha=4", "loss.alpah=4"))
    done = _ablation(bare, "report", ok=False)
    assert done.stderr.strip() == "error: configs/ablation.yaml: row 'alpha_4': 'loss.alpah' is not a params.yaml key; " \
                                  "check its spelling against params.yaml"


def test_dvc_not_found(monkeypatch, tmp_path):
    monkeypatch.setattr(ablation.shutil, "which", lambda _: None)
    monkeypatch.setattr(ablation.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(RuntimeError, match="dvc not found: activate"):
        ablation.dvc()


def test_the_shipped_grid():
    grid = load_grid(ROOT / "configs" / "ablation.yaml", read_params(ROOT / "params.yaml"))
    rows = {r.name: r for r in grid.rows}
    assert len(rows) == 18 and grid.select_methods == ("dpo", "unlikelihood", "dropout") and grid.window == 0.1
    assert grid.experiment(rows["full"]) is None and grid.experiment(rows["sft"]) is None  # the baseline
    assert {grid.experiment(rows[m]) for m in ("dpo", "unlikelihood", "dropout")} == {"abl-dpo"}  # one experiment
    assert rows["no_toxic_negatives"].sets == ("loss.negatives=[swap_ent,mask_regen,sys_lowcon]",)
    assert rows["tau_0.07"].sets == ("loss.temperature=0.07",)
    assert rows["dropout_0.1"].sets == ("seeds.methods=[sft,contrastive,dropout]", "dropout.attention=0.1",
                                        "dropout.hidden=0.1")
    assert all(r.method == "contrastive" for r in grid.rows[:10])


@pytest.mark.parametrize(("old", "new", "message"), [
    ("loss.alpha=4]", "'loss.alpha=4,8']", "'loss.alpha=4,8' has a comma outside brackets, which DVC runs as a sweep"),
    ("name: scale_static", "name: alpha_4", "row 'alpha_4': the name is used twice"),
    ("alpha_4, method: contrastive", "alpha_4, method: cotnrastive", "method 'cotnrastive' is not under params.yaml"),
    ("loss.alpha=4]", "'loss.alpha 4']", "'loss.alpha 4' is not KEY=VALUE"),
    ("methods: [dpo]", "methods: [sft, dpo]", None),
    ("methods: [dpo]", "methods: [alpha_4]", "select.methods: 'alpha_4' needs a row named 'alpha_4' reporting it"),
])
def test_bad_grids(tmp_path, old, new, message):
    (tmp_path / "g.yaml").write_text(GRID.replace(old, new))
    if message is None:  # sft has a row of its own name: a valid (if pointless) selection
        assert load_grid(tmp_path / "g.yaml", yaml.safe_load(PARAMS)).select_methods == ("sft", "dpo")
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        load_grid(tmp_path / "g.yaml", yaml.safe_load(PARAMS))


def test_selection_criterion():
    cands = [("dpo", 0.60, -3.80), ("dpo_beta", 1.00, -4.20), ("dpo_lr", 0.55, -3.75)]
    assert choose(cands, -3.70, 0.1, "dpo")[0] == "dpo"  # beta: best margin, 0.5 nats outside; -3.80 is on the edge
    assert choose(cands, -3.69, 0.1, "dpo")[0] == "dpo_lr"  # now dpo is 0.11 away
    assert choose(cands[1:2], -3.70, 0.1, "dpo") == ("dpo", "none of the 1 setting(s) run is within 0.1 nats/token "
                                                     "of sft: the default")
    assert choose([], -3.70, 0.1, "dpo")[1] == "no setting has numbers yet: the default"


def test_experiment_states_and_failed_rows_read_nothing():
    def exp(name, rev, state=None, error=None):
        return {"name": name, "executor": state and {"state": state},
                "revs": [{"rev": rev, "name": name, "error": error, "data": {"outs": {}}}]}
    show = [{"rev": "workspace", "data": {}},
            {"rev": "b" * 40, "name": "main", "data": {"outs": {}}, "experiments": [
                exp("abl-alpha_4", "1" * 40), exp("abl-dpo", "2" * 40, "success"),
                exp("abl-scale_static", "3" * 40, "failed", {"msg": "Experiment run failed"}),
                exp("abl-dpo_beta_0.5", "4" * 40, "queued"),
                exp("abl-dpo_beta_0.5", "5" * 40, "failed", {"msg": "Experiment run failed"})]}]
    baseline, found = read_show(show)
    assert baseline.rev == "b" * 40 and baseline.name == "main"
    assert {n: e.state for n, e in found.items()} == {"abl-alpha_4": "done", "abl-dpo": "done",
                                                      "abl-scale_static": "failed", "abl-dpo_beta_0.5": "queued"}
    grid = ablation.Grid((Row("full", "contrastive", ()), Row("scale_static", "contrastive", ("loss.scale=static",)),
                          Row("sft", "sft", ())), (), "sft", 0.1)
    read = {("b" * 40, "metrics/compare.json"): {"contrastive": {"seeds": 1, "runs": ["contrastive"]}}}

    def reader(rev, path):
        assert rev != "3" * 40, "a failed experiment's files are the baseline's: never read"
        return read.get((rev, path))
    _, results = collect(grid, show, reader)
    assert [r.why for r in results] == ["", "not run (failed)", "no `sft` in its metrics/compare.json"]


def test_verdict_words():
    m = {"value": 0.0124, "low": 0.001, "high": 0.0308, "mde": 0.0213, "note": ""}
    assert verdict(m) == "Δ vs sft +0.0124 [+0.0010, +0.0308]: CI excludes 0 (above sft)"
    assert verdict(m | {"low": -0.001}) == "Δ vs sft +0.0124 [-0.0010, +0.0308]: not resolved at this budget (MDE ±0.0213)"
    assert verdict(m | {"value": -0.02, "low": -0.03, "high": -0.01}).endswith("CI excludes 0 (below sft)")


def test_report_from_a_later_commit_names_the_baseline(project):
    _ablation(project, "report", "--out", "a.md", "--figure", "a.png")
    base = _run(project, "git", "rev-parse", "HEAD").stdout.strip()
    (project / "notes.txt").write_text("a later commit\n")
    _run(project, "git", "add", "notes.txt")
    _run(project, "git", "commit", "-qm", "later")
    try:
        _ablation(project, "report", "--out", "b.md", "--figure", "b.png")  # HEAD: no experiment of its own
        assert "not run" in _line((project / "b.md").read_text(), "alpha_4")
        _ablation(project, "report", "--baseline", base, "--out", "a.md", "--figure", "c.png")
        first = (project / "a.md").read_text()
        assert "| abl-alpha_4 `" in _line(first, "alpha_4")
        assert (project / "c.png").read_bytes() == (project / "a.png").read_bytes()
    finally:
        _run(project, "git", "reset", "-q", "--hard", base)

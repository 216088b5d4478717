"""The README's sweep commands work: a queued `dvc exp` grid runs and every point shows up with
its params and metrics (a tiny DVC project with one stage; the real pipeline is not needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

DVC = str(Path(sys.executable).with_name("dvc"))
TRAIN = """\
import json, pathlib, yaml
loss = yaml.safe_load(open("params.yaml"))["loss"]
pathlib.Path("metrics").mkdir(exist_ok=True)
score = loss["alpha"] * (2 if loss["scale"] == "dynamic" else 1)
json.dump({"score": score}, open("metrics/score.json", "w"))
"""
DVC_YAML = """\
stages:
  train:
    cmd: {python} train.py
    deps: [train.py]
    params: [loss.alpha, loss.scale]
    metrics:
      - metrics/score.json:
          cache: false
"""


def _run(cwd: Path, *cmd: str) -> str:
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _project(root: Path) -> Path:
    root.mkdir()
    (root / "params.yaml").write_text("loss:\n  alpha: 16.0\n  scale: none\n")
    (root / "train.py").write_text(TRAIN)
    (root / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    _run(root, "git", "init", "-q")
    _run(root, DVC, "init", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "tiny project")
    return root


def _experiments(show: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Experiment name -> (its loss params, its metrics) from `dvc exp show --json`."""
    found = {}
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                found[rev["name"]] = (data["params"]["params.yaml"]["data"]["loss"],
                                      data["metrics"]["metrics/score.json"]["data"])
    return found


def test_queued_grid_runs_and_every_point_shows_up(tmp_path):
    root = _project(tmp_path / "project")
    queued = _run(root, DVC, "exp", "run", "--queue", "-S", "loss.alpha=8,16", "-S", "loss.scale=none,dynamic")
    assert queued.count("Queued experiment") == 4
    _run(root, DVC, "queue", "start", "-j", "1")
    try:
        deadline = time.time() + 100
        while any(w in _run(root, DVC, "queue", "status") for w in ("Queued", "Running")):
            assert time.time() < deadline, "the queued experiments did not finish within 100 s"
            time.sleep(1)
    finally:
        _run(root, DVC, "queue", "stop")
    exps = _experiments(json.loads(_run(root, DVC, "exp", "show", "--json")))
    points = sorted((p["alpha"], p["scale"], m["score"]) for p, m in exps.values())
    assert points == [(8, "dynamic", 16), (8, "none", 8), (16, "dynamic", 32), (16, "none", 16)]
    by_point = {(p["alpha"], p["scale"]): name for name, (p, _) in exps.items()}
    diff = json.loads(_run(root, DVC, "exp", "diff", by_point[8, "none"], by_point[16, "dynamic"], "--json"))
    assert diff["metrics"]["metrics/score.json"]["score"] == {"old": 8, "new": 32, "diff": 24}
    assert diff["params"]["params.yaml"]["loss.scale"] == {"old": "none", "new": "dynamic"}

"""kill -9 of a real chunked augmentation stage (toxify) and its resume (aligntax/augment/chunks.py).

The stage runs as its own process through a launcher that can hang it at a chosen point: inside
chunk K (rows computed, nothing written) or right after chunk K's files were written. The test
waits for the hang, sends SIGKILL, then resumes: with the same params and inputs the output and
metrics (all but their seconds) are identical to an uninterrupted run and only the unfinished chunks are computed;
with a changed param or a changed scorer folder the old chunks are ignored (logged) and the output
equals an uninterrupted run with the new inputs, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aligntax.scoring.head import TOXICITY_HEAD, LinearHead
from aligntax.scoring.toxicity import ToxicityFeatures
from stages import toxify as toxify_stage

ROOT = Path(__file__).resolve().parents[2]
POSTS = pd.DataFrame({
    "id": [f"p{i}" for i in range(6)], "subreddit": "tifu", "title": "t",
    "post": ["i dropped my phone in the toilet at work today and my boss laughed at me.",
             "forgot my keys and got locked out in the rain, so i called my mom in boston.",
             "my cat knocked over a glass of water on my laptop on monday morning.",
             "we drove to new york with john and mary for the weekend and got lost.",
             "i waved back at a stranger who was waving at someone else behind me.",
             "i burned the toast twice and set off the smoke alarm before the guests came."],
    "summary": ["Phone in the toilet, boss laughed.", "Locked out in the rain.", "Cat spilled water on my laptop.",
                "Got lost on the way to New York.", "Waved at a stranger by mistake.", "Burned toast, smoke alarm."],
})
PARAMS = {"seed": 0, "scoring": {"toxicity": {"backend": "ensemble"}},
          "toxify": {"strategies": ["lm", "lexicon"], "lm_share": 1.0, "max_new_tokens": 6, "lexicon_samples": 2,
                     "min_toxicity": 0.4, "chunk_size": 2}}  # 6 posts: chunks 0, 1, 2
LAUNCHER = '''
"""stages.toxify, but HANG=mid:K hangs inside chunk K and HANG=after:K right after chunk K is written."""
import os
import time
from pathlib import Path

import aligntax.augment.chunks as chunks
import aligntax.augment.toxify as toxify
from aligntax import cli
from stages import toxify as stage

WHERE, AT = (os.environ.get("HANG") or "none:-1").split(":")
CALLS = Path(os.environ["CALLS"])


def hang():
    CALLS.with_suffix(".hung").touch()
    time.sleep(600)


def toxify_chunk(posts, index, *args, **kwargs):
    with CALLS.open("a") as fh:
        fh.write(f"{index}\\n")
    out = original_chunk(posts, index, *args, **kwargs)
    if WHERE == "mid" and index == int(AT):
        hang()
    return out


def write_json(obj, path):
    original_json(obj, path)
    if WHERE == "after" and Path(path).name == f"chunk-{int(AT):05d}.json":
        hang()


original_chunk, toxify.toxify_chunk = toxify.toxify_chunk, toxify_chunk
original_json, chunks.write_json = chunks.write_json, write_json
cli.run(stage.main)
'''


def _head(folder: Path, intercept: float) -> Path:
    """A toxicity head that reads only the profanity-check logit (``intercept`` shifts every score)."""
    names = ToxicityFeatures.names()
    coef = np.zeros(len(names))
    coef[names.index("profanity_check")] = 1.0
    LinearHead(np.zeros(len(names)), np.ones(len(names)), coef, intercept, names, {}).save(folder, TOXICITY_HEAD)
    return folder


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lab(tiny_llama_dir, tmp_path_factory) -> Path:
    """Inputs, params (as given and changed) and the uninterrupted outputs of each variant."""
    lab = tmp_path_factory.mktemp("kill")
    POSTS.to_parquet(lab / "train.parquet")
    _head(lab / "scorers", 0.0)
    _head(lab / "scorers_changed", -2.0)  # a refitted head: lower scores, fewer rewrites kept
    (lab / "launch.py").write_text(textwrap.dedent(LAUNCHER))
    (lab / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    changed = PARAMS | {"toxify": PARAMS["toxify"] | {"min_toxicity": 0.8}}
    (lab / "params_changed.yaml").write_text(yaml.safe_dump(changed))
    shutil.copytree(tiny_llama_dir, lab / "base")
    for name, params, scorers in (("whole", "params.yaml", "scorers"), ("whole_params", "params_changed.yaml",
                                                                        "scorers"),
                                  ("whole_scorers", "params.yaml", "scorers_changed")):
        argv = ["toxify", *_args(lab, name, params, scorers)]
        mp = pytest.MonkeyPatch()
        mp.setattr(sys, "argv", argv)
        try:
            toxify_stage.main()  # uninterrupted, in this process (the same code the processes run)
        finally:
            mp.undo()
    outs = {name: _md5(lab / name / "out.parquet") for name in ("whole", "whole_params", "whole_scorers")}
    assert len(set(outs.values())) == 3  # each change changes the result, so a mix would show
    return lab


def _args(lab: Path, name: str, params: str, scorers: str) -> list[str]:
    return ["--params", str(lab / params), "--train", str(lab / "train.parquet"), "--base-model", str(lab / "base"),
            "--scorers", str(lab / scorers), "--out", str(lab / name / "out.parquet"),
            "--metrics", str(lab / name / "metrics.json"), "--work-dir", str(lab / name / "work")]


def _env(calls: Path, hang: str = "") -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CALLS": str(calls), "HANG": hang}


def _kill_at(lab: Path, name: str, hang: str) -> Path:
    """Run the stage until it hangs at ``hang``, SIGKILL it; return its work folder."""
    calls = lab / name / "calls.txt"
    calls.parent.mkdir()
    cmd = [sys.executable, str(lab / "launch.py"), *_args(lab, name, "params.yaml", "scorers")]
    proc = subprocess.Popen(cmd, env=_env(calls, hang), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not calls.with_suffix(".hung").exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "the stage never reached the hang point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (lab / name / "out.parquet").exists() and not (lab / name / "metrics.json").exists()
    return lab / name / "work"


def _resume(lab: Path, name: str, work: Path, params: str, scorers: str) -> tuple[list[int], str]:
    """Resume from a copy of the killed run's work folder; (chunks computed, stderr)."""
    (lab / name).mkdir()
    shutil.copytree(work, lab / name / "work")
    calls = lab / name / "calls.txt"
    cmd = [sys.executable, str(lab / "launch.py"), *_args(lab, name, params, scorers)]
    run = subprocess.run(cmd, env=_env(calls), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (lab / name / "work" / "toxify").exists()  # merged: the work folder (old chunks included) is gone
    return [int(x) for x in (calls.read_text() if calls.exists() else "").split()], run.stderr


def _counts(path: Path) -> dict:
    """The metrics without their wall seconds (which differ from run to run)."""
    metrics = json.loads(path.read_text())
    assert set(metrics.pop("seconds")) >= {"total", "load"}
    return metrics


def _same_as(lab: Path, name: str, whole: str) -> None:
    assert _md5(lab / name / "out.parquet") == _md5(lab / whole / "out.parquet")
    assert _counts(lab / name / "metrics.json") == _counts(lab / whole / "metrics.json")


@pytest.mark.parametrize("hang, done, changed", [
    ("mid:1", [0], ("params_changed.yaml", "scorers", "whole_params")),  # killed inside chunk 1
    ("after:1", [0, 1], ("params.yaml", "scorers_changed", "whole_scorers")),  # killed just after chunk 1
    ("after:2", [0, 1, 2], None),  # killed after the last chunk, before the merge: nothing left to compute
])
def test_kill_9_then_resume(lab, hang, done, changed):
    tag = hang.replace(":", "")
    work = _kill_at(lab, f"killed_{tag}", hang)
    chunk_files = sorted(p.name for p in work.rglob("chunk-*"))
    assert chunk_files == [f"chunk-{i:05d}.{ext}" for i in done for ext in ("json", "parquet")]

    computed, log = _resume(lab, f"same_{tag}", work, "params.yaml", "scorers")
    assert computed == [i for i in range(3) if i not in done]  # the finished chunks are reused, not redone
    assert f"resuming: reusing {len(done)} of 3 finished chunks" in log and "not resuming" not in log
    _same_as(lab, f"same_{tag}", "whole")  # byte-identical to the uninterrupted run

    if changed is None:
        return
    params, scorers, whole = changed
    computed, log = _resume(lab, f"changed_{tag}", work, params, scorers)
    assert computed == [0, 1, 2]  # a fresh start: no chunk of the old params or scorer is used
    assert "not resuming the chunks" in log and "starting afresh" in log and "resuming: reusing" not in log
    _same_as(lab, f"changed_{tag}", whole)

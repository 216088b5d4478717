"""The evaluate stage under `torchrun --nproc_per_node 2` (gloo on CPU): the same bytes as one process,
written by process 0 only; a failing process fails the stage with nothing written."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aligntax.io import write_parquet
from aligntax.schema import GROUPS, RAW

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "tests" / "launch_stage.py"
OUTPUTS = ("gen.parquet", "scores.parquet", "pref.parquet", "m.json")
POSTS = [
    "we drove to new york with john and mary for the weekend and got lost.",
    "i dropped my phone in the toilet.",
    "my cat knocked over a glass of water on my laptop on monday morning.",
    "i forgot my keys and got locked out in the rain, so i called my mom in boston.",
    "my boss laughed at me.",
    "tl;dr: forgot my keys.",
    "we got lost on the weekend with john.",
]


def launch(args: list[str], procs: int, writes: Path, fail: str | None = None) -> subprocess.CompletedProcess:
    """``tests/launch_stage.py ARGS`` in ``procs`` processes (plain python for 1)."""
    writes.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "ALIGNTAX_TEST_WRITES": str(writes), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if fail:
        env["ALIGNTAX_TEST_FAIL"] = fail
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else []
    return subprocess.run([sys.executable, *launcher, str(LAUNCH), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def md5s(folder: Path) -> dict[str, str]:
    """md5 of each output; the metrics JSON without its run facts (seconds, store traffic)."""
    out = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in OUTPUTS}
    metrics = {k: v for k, v in json.loads((folder / "m.json").read_text()).items()
               if k not in ("seconds", "shared_bottom")}
    out["m.json"] = hashlib.md5(json.dumps(metrics).encode()).hexdigest()
    return out


def written(writes: Path, rank: int) -> set[str]:
    path = writes / f"writes-{rank}.txt"
    return set(path.read_text().split()) if path.exists() else set()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("mp-eval")
    evals = pd.DataFrame([{"id": f"p{i}", "post": text, "summary": "got lost on the way", "subreddit": "tifu",
                           "title": None} for i, text in enumerate(POSTS)])
    write_parquet(evals, tmp / "eval.parquet", RAW)

    def row(pid, role, kind, text):
        return {"post_id": pid, "role": role, "kind": kind, "text": text, "entity_spans": [], "toxicity": 0.1}

    groups = [row(f"p{i}", "negative", "swap_ent", f"got lost on the way to boston {i}") for i in range(5)]
    groups += [row("p1", "positive", "backtranslation", "we got lost on the way"),
               row("p3", "negative", "toxic_lexicon", "got lost on the damn way")]
    write_parquet(pd.DataFrame(groups), tmp / "groups.parquet", GROUPS)
    params = {"seed": 0, "model": {"prompt_template": "post: {post} tl;dr:"},
              "evaluate": {"n_posts": 0, "generate": {"max_new_tokens": 6, "batch_size": 2}}}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp, tiny_llama_dir


def stage_args(tmp: Path, model: Path, out: Path) -> list[str]:
    return ["stages.evaluate", "--params", str(tmp / "params.yaml"), "--method", "sft", "--model", str(model),
            "--eval", str(tmp / "eval.parquet"), "--groups", str(tmp / "groups.parquet"),
            "--generations", str(out / "gen.parquet"), "--scores", str(out / "scores.parquet"),
            "--preferences", str(out / "pref.parquet"), "--metrics", str(out / "m.json")]


def test_two_processes_write_the_same_bytes_as_one_and_only_rank_0_writes(setup):
    tmp, model = setup
    one = launch(stage_args(tmp, model, tmp / "one"), 1, tmp / "w1")
    assert one.returncode == 0, one.stderr[-3000:]
    two = launch(stage_args(tmp, model, tmp / "two"), 2, tmp / "w2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert md5s(tmp / "two") == md5s(tmp / "one")
    gens = pd.read_parquet(tmp / "two" / "gen.parquet")
    assert gens["post_id"].tolist() == [f"p{i}" for i in range(len(POSTS))]  # 4 batches of <= 2: both ranks generated
    assert json.loads((tmp / "two" / "m.json").read_text())["preference"]["rows"]["posts_scored"] == 5
    assert written(tmp / "w2", 0) == {str((tmp / "two" / name).resolve()) for name in OUTPUTS}
    assert written(tmp / "w2", 1) == set()


def test_a_failing_process_fails_the_stage_and_nothing_is_written(setup):
    tmp, model = setup
    out = tmp / "failed"
    res = launch(stage_args(tmp, model, out), 2, tmp / "wf", fail="1:aligntax.evaluate.run:generate")
    assert res.returncode != 0
    assert "injected failure in process 1" in res.stderr
    assert not out.exists() and written(tmp / "wf", 0) == set()

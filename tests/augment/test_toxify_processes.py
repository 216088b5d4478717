"""The toxify stage (LM rewrites + lexicon) under `torchrun --nproc_per_node 2` (gloo on CPU): process K
does the chunks with index % 2 == K, process 0 alone merges and writes; the bytes (metrics: all but their
seconds) equal one process's, also with more processes than posts."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import aligntax.scoring as scoring
from aligntax.io import write_parquet
from aligntax.schema import RAW
from stages import toxify as stage

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "tests" / "launch_stage.py"
SUMMARIES = ["my cat knocked over a glass of water.", "we drove to new york with john.", "i forgot my keys.",
             "my boss laughed at me at work today.", "got locked out in the rain."]


class Tox:
    def score(self, texts):
        return [0.45] * len(texts)


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mp-toxify")
    toxify = {"strategies": ["lm", "lexicon"], "lm_share": 1.0, "lm_samples": 1, "max_new_tokens": 6,
              "chunk_size": 2, "lexicon_samples": 1, "prefer_lm": False}
    (tmp / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "toxify": toxify}))
    (tmp / "scorers").mkdir()
    (tmp / "scorers" / "head.json").write_text("{}")
    return tmp / "params.yaml"


def train_file(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "post": "a post about my day.",
                       "summary": SUMMARIES[:n], "subreddit": "tifu", "title": "t"})
    write_parquet(df, folder / "train.parquet", RAW)
    return folder / "train.parquet"


def stage_args(params: Path, model: Path, train: Path, out: Path) -> list[str]:
    return ["--params", str(params), "--train", str(train), "--base-model", str(model),
            "--scorers", str(params.parent / "scorers"), "--out", str(out / "toxic.parquet"),
            "--metrics", str(out / "m.json"), "--work-dir", str(out / "work")]


def in_process(monkeypatch, args: list[str]) -> None:
    """The one-process reference, run here (one thread, like the launched processes)."""
    monkeypatch.setattr(scoring, "load_toxicity_scorer", lambda *_a, **_k: Tox())
    monkeypatch.setattr(sys, "argv", ["toxify", *args])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stage.main()
    finally:
        torch.set_num_threads(threads)


def two_processes(args: list[str], writes: Path) -> None:
    writes.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "ALIGNTAX_TEST_WRITES": str(writes), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(LAUNCH), "stages.toxify", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def md5s(out: Path) -> dict[str, str]:
    """Hashes of the rows and of the metrics without their wall seconds (which differ from run to run)."""
    metrics = json.loads((out / "m.json").read_text())
    assert "total" in metrics.pop("seconds")
    return {"toxic.parquet": hashlib.md5((out / "toxic.parquet").read_bytes()).hexdigest(),
            "m.json": hashlib.md5(json.dumps(metrics, sort_keys=True).encode()).hexdigest()}


def written(writes: Path, rank: int) -> list[Path]:
    path = writes / f"writes-{rank}.txt"
    return [Path(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("n_posts", [5, 1])  # 3 chunks of 2; 1 chunk: process 1 has nothing to do
def test_two_processes_write_the_same_bytes_as_one(tmp_path, monkeypatch, params, tiny_llama_dir, n_posts):
    train = train_file(tmp_path, n_posts)
    in_process(monkeypatch, stage_args(params, tiny_llama_dir, train, tmp_path / "one"))
    two_processes(stage_args(params, tiny_llama_dir, train, tmp_path / "two"), tmp_path / "writes")
    assert md5s(tmp_path / "two") == md5s(tmp_path / "one")
    rows = pd.read_parquet(tmp_path / "two" / "toxic.parquet")
    assert set(rows["kind"]) == {"toxic_lm", "toxic_lexicon"} and rows["post_id"].nunique() == n_posts
    work = (tmp_path / "two" / "work").resolve()
    outputs = {(tmp_path / "two" / name).resolve() for name in ("toxic.parquet", "m.json")}
    chunks = {rank: sorted(p.name for p in written(tmp_path / "writes", rank) if work in p.parents) for rank in (0, 1)}
    assert chunks[0] == (["chunk-00000.json", "chunk-00000.parquet", "chunk-00002.json", "chunk-00002.parquet"]
                         if n_posts == 5 else ["chunk-00000.json", "chunk-00000.parquet"])
    assert chunks[1] == (["chunk-00001.json", "chunk-00001.parquet"] if n_posts == 5 else [])
    assert {p for p in written(tmp_path / "writes", 0) if work not in p.parents} == outputs
    assert all(work in p.parents for p in written(tmp_path / "writes", 1))  # process 1: its chunks only
    assert not (work / "toxify").exists()  # merged: the finished chunks are gone

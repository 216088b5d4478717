"""Training throughput of the train stage with 1 vs 2 CPU processes (torchrun, DDP over gloo), tiny model.

Informational: on a 2-core machine the two processes share the cores. The same global batch in
both runs (1 process: batch 1 x grad_accum 2; 2 processes: batch 1 each). Prints posts/s and
steps/s of the training loop (the Trainer's train_runtime, without process start-up) and wall time.

    python bench/train_procs.py [--posts 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CORPUS, build_tiny_model  # noqa: E402  (the tests' tiny model, no network)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(work: Path, base: Path, procs: int) -> dict:
    """Train sft with ``procs`` processes in ``work``; its metrics plus the wall time."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["grad_accum"] = 2 // procs
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port", str(_free_port())]
    cmd = [sys.executable, *launcher, "-m", "stages.train", "--method", "sft", "--base", str(base), "--train",
           "train.parquet", "--out", f"models/p{procs}", "--metrics", f"p{procs}.json", "--live-dir", f"live{procs}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.time()
    subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True, text=True)
    wall = time.time() - start
    return json.loads((work / f"p{procs}.json").read_text()) | {"wall": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posts", type=int, default=64, help="train posts (one epoch)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build_tiny_model(work / "tiny")
        posts = [CORPUS[i % 4] + f" day {i}." for i in range(args.posts)]
        pd.DataFrame({"id": [str(i) for i in range(args.posts)], "subreddit": ["tifu"] * args.posts,
                      "title": ["t"] * args.posts, "post": posts, "summary": [s[:20] for s in posts]}
                     ).to_parquet(work / "train.parquet")
        params = {"seed": 0, "model": {"prompt_template": "post: {post} tl;dr:"},
                  "train": {"epochs": 1, "batch_size": 1, "lr": 1e-3, "logging_steps": 4, "max_prompt_tokens": 64,
                            "trainable": "full"},
                  "trained": {"sft": {"module": "aligntax/train/sft.py", "section": "train", "data": "train.parquet"}}}
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        print(f"{'processes':>9} {'steps':>5} {'train s':>8} {'steps/s':>8} {'posts/s':>8} {'wall s':>7} train_loss")
        for procs in (1, 2):
            m = run(work, base, procs)
            print(f"{procs:>9} {m['steps']:>5} {m['seconds']:>8.1f} {m['steps'] / m['seconds']:>8.2f} "
                  f"{args.posts / m['seconds']:>8.1f} {m['wall']:>7.1f} {m['train_loss']:.5f}")


if __name__ == "__main__":
    main()

"""Wall time of evaluate's generation and of the toxify stage with 1 vs N processes (torchrun, gloo on CPU).

    python -m bench.procs                                   # 1 and 2 processes, default paths
    python -m bench.procs --procs 1 2 4 --eval-posts 32 --train-posts 64

Each run is `python -m torch.distributed.run --standalone --nproc_per_node N -m bench.procs --worker ...`
(plain python for N=1). Inside, after a barrier, it times `generate_method` on the first
--eval-posts eval posts (params.yaml evaluate.generate, batches of --batch-size, the base model) and
`run_toxify` on the first --train-posts train posts (params.yaml toxify, chunk size --chunk-size
so the chunks spread over the processes, the real toxicity scorer). It also checks that the
outputs equal the one-process run's. `launch s` is the whole command, imports and model loads
included. Every process runs with OMP_NUM_THREADS=1; on a shared 2-core machine the numbers are
informational.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from aligntax import distributed
from aligntax.augment.toxify import ToxifyConfig, run_toxify
from aligntax.config import load_section, load_seed, read_params
from aligntax.evaluate.run import EvaluateConfig, encode_prompts, generate_method, load_method, select_posts
from aligntax.generation import Decoding
from aligntax.io import read_parquet
from aligntax.models import ModelConfig
from aligntax.schema import RAW
from aligntax.scoring import ScoringConfig, load_toxicity_scorer

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    params = read_params(args.params)
    cfg = load_section(params, "evaluate", EvaluateConfig)
    cfg = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, batch_size=args.batch_size))
    template = load_section(params, "model", ModelConfig).prompt_template
    evals, _ = select_posts(read_parquet(args.eval, RAW), args.eval_posts)
    method = load_method("base", args.model, Decoding())
    prompts = encode_prompts(method.tokenizer, template, "", evals, cfg.max_prompt_tokens)
    distributed.barrier()
    start = time.perf_counter()
    gens = generate_method(method, evals, prompts, cfg.generate)
    generate_s = time.perf_counter() - start

    tox = dataclasses.replace(load_section(params, "toxify", ToxifyConfig), chunk_size=args.chunk_size)
    scoring = load_section(params, "scoring", ScoringConfig)
    tmp = Path(args.tmp)
    train = tmp / "train.parquet"
    if distributed.is_main():
        pd.read_parquet(args.train).head(args.train_posts).to_parquet(train)
    distributed.barrier()
    start = time.perf_counter()
    run_toxify(str(train), str(tmp / "toxic.parquet"), str(tmp / "work"), tox, args.model,
               lambda: load_toxicity_scorer(scoring.toxicity, scorer_dir=args.scorers).score, load_seed(params))
    toxify_s = time.perf_counter() - start
    if distributed.is_main():
        gen_md5 = hashlib.md5(gens.to_json().encode()).hexdigest()
        tox_md5 = hashlib.md5((tmp / "toxic.parquet").read_bytes()).hexdigest()
        print("RESULT " + json.dumps({"generate_s": generate_s, "toxify_s": toxify_s, "posts": len(evals),
                                      "gen_md5": gen_md5, "toxic_md5": tox_md5}), flush=True)


def launch(args: argparse.Namespace, procs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "TOKENIZERS_PARALLELISM": "false"}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, *launcher, "-m", "bench.procs", "--worker", "--tmp", tmp, "--params", args.params,
               "--model", args.model, "--eval", args.eval, "--train", args.train, "--scorers", args.scorers,
               "--eval-posts", str(args.eval_posts), "--train-posts", str(args.train_posts),
               "--chunk-size", str(args.chunk_size), "--batch-size", str(args.batch_size)]
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{procs} processes failed:\n{res.stderr[-3000:]}")
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "launch_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="models/base")
    p.add_argument("--eval", default="data/raw/eval.parquet")
    p.add_argument("--train", default="data/cased/train.parquet")
    p.add_argument("--scorers", default="models/scorers")
    p.add_argument("--eval-posts", type=int, default=16)
    p.add_argument("--train-posts", type=int, default=32)
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4, help="generation batch size (whole batches go to processes)")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    results = {n: launch(args, n) for n in args.procs}
    base = results[args.procs[0]]
    print(f"{'procs':>5} {'generate s':>11} {'toxify s':>9} {'launch s':>9}  same output as {args.procs[0]}")
    for n, r in results.items():
        same = r["gen_md5"] == base["gen_md5"] and r["toxic_md5"] == base["toxic_md5"]
        print(f"{n:5d} {r['generate_s']:11.1f} {r['toxify_s']:9.1f} {r['launch_s']:9.1f}  {same}")
    print(f"({base['posts']} eval posts generated, {args.train_posts} train posts toxified)")


if __name__ == "__main__":
    main()

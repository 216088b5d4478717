"""Time `evaluate@<method>` per phase: each method's stage run as DVC runs it, in a fresh process.

    python bench/evaluate.py base=models/base sft=models/sft self_debias=models/sft
    python bench/evaluate.py sft=models/sft --store /tmp/states      # the shared-bottom store used (fresh folder)
    python bench/evaluate.py sft=models/sft --store off              # no store: every block computed
    python bench/evaluate.py sft=models/sft --n-posts 8 --no-groups  # a quick generation-only run

Runs `python -m stages.evaluate` per method in the order given (outputs to a temporary folder), and
prints the stage's own "seconds" (metrics JSON: imports, load, generate and its prefill, score,
preferences), the process's CPU seconds, the shared bottom's split and the store's traffic, and the
load average. The first method whose bottom is shared fills the store; later ones read it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("total", "imports", "load", "generate", "generate_prefill", "score", "preferences")


def run_stage(name: str, model: str, args: argparse.Namespace, out: Path, params: Path) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "stages.evaluate", "--params", str(params), "--method", name, "--model", model,
           "--eval", args.eval, "--scorer-dir", args.scorer_dir, "--generations", str(out / "gen.parquet"),
           "--scores", str(out / "scores.parquet"), "--metrics", str(out / "m.json")]
    if not args.no_groups:
        cmd += ["--groups", args.groups, "--preferences", str(out / "pref.parquet"),
                "--likelihoods", str(out / "lik.parquet")]
    env = dict(os.environ)
    if args.store:
        env["ALIGNTAX_STATE_CACHE"] = args.store
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads((out / "m.json").read_text()), cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("methods", nargs="+", help="name=model_dir, run in this order")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--eval", default="data/raw/eval.parquet")
    p.add_argument("--groups", default="data/augment/eval/groups.parquet")
    p.add_argument("--no-groups", action="store_true", help="skip preferences")
    p.add_argument("--scorer-dir", default="models/scorers")
    p.add_argument("--n-posts", type=int, default=None, help="override evaluate.n_posts")
    p.add_argument("--store", default=None, help="ALIGNTAX_STATE_CACHE for the runs (a folder, or off)")
    p.add_argument("--keep", default=None, help="copy each method's outputs to <keep>/<method>/")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'method':<14}" + "".join(f"{k.replace('generate_', ''):>11}" for k in PHASES)
          + f"{'cpu s':>8}{'split':>7}{'hits':>6}{'miss':>6}{'MB in':>7}{'MB out':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "params.yaml"
        values = yaml.safe_load((ROOT / args.params).read_text())
        if args.n_posts is not None:
            values["evaluate"]["n_posts"] = args.n_posts
        params.write_text(yaml.safe_dump(values, sort_keys=False))
        for spec in args.methods:
            name, model = spec.split("=", 1)
            out = Path(args.keep) / name if args.keep else Path(tmp) / name
            out.mkdir(parents=True, exist_ok=True)
            metrics, cpu = run_stage(name, model, args, out, params)
            sec, bottom = metrics["seconds"], metrics["shared_bottom"]
            store = [bottom.get("hits", 0), bottom.get("misses", 0), bottom.get("bytes_read", 0) / 1e6,
                     bottom.get("bytes_written", 0) / 1e6]
            print(f"{name:<14}" + "".join(f"{sec.get(k, 0.0):>11.1f}" for k in PHASES)
                  + f"{cpu:>8.1f}{bottom['split'] or '-':>7}{store[0]:>6}{store[1]:>6}{store[2]:>7.0f}{store[3]:>7.0f}",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

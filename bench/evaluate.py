"""Time the evaluate stage per method on the default params: scorer load, generation, scoring.

    python bench/evaluate.py                      # every method in params.yaml whose model exists
    python bench/evaluate.py base=models/base     # chosen methods
    python bench/evaluate.py --n-posts 8          # override evaluate.n_posts

Prints wall and CPU seconds; one stage run = scorer load + one method's generation + scoring
(plus ~5-10 s of Python imports, not counted here). The load of other processes on the machine
inflates wall time; CPU seconds are less sensitive to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from aligntax.config import load_section, load_seed, read_params
from aligntax.evaluate.run import EvaluateConfig, generate_method, load_scorers, score_method, select_posts
from aligntax.io import read_parquet
from aligntax.models import ModelConfig
from aligntax.report.compare import load_methods
from aligntax.schema import RAW


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("methods", nargs="*", help="name=model_dir (default: params.yaml methods that exist)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--eval", default="data/raw/eval.parquet")
    p.add_argument("--scorer-dir", default="models/scorers")
    p.add_argument("--n-posts", type=int, default=None)
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "evaluate", EvaluateConfig)
    if args.n_posts is not None:
        cfg = dataclasses.replace(cfg, n_posts=args.n_posts)
    template = load_section(params, "model", ModelConfig).prompt_template
    methods = dict(m.split("=", 1) for m in args.methods) or {
        name: path for name, path in load_methods(params).items() if (Path(path) / "config.json").is_file()
    }
    evals, _ = select_posts(read_parquet(args.eval, RAW), cfg.n_posts)
    print(f"{len(evals)} posts, max_new_tokens {cfg.generate.max_new_tokens}, batch_size {cfg.generate.batch_size}")
    with Clock() as load:
        scorers = load_scorers(params, cfg, args.scorer_dir)
    print(f"scorers loaded: {load.wall:.1f} s wall, {load.cpu:.1f} s cpu")
    print(f"{'method':<14}{'generate s':>12}{'score s':>10}{'stage s':>10}{'gen cpu s':>11}{'s/post':>8}{'tokens':>8}")
    for name, model_dir in methods.items():
        with Clock() as gen:
            gens = generate_method(name, model_dir, evals, cfg, template, params)
        with Clock() as score:
            score_method(gens, scorers, cfg, load_seed(params))
        total = load.wall + gen.wall + score.wall
        print(f"{name:<14}{gen.wall:>12.1f}{score.wall:>10.1f}{total:>10.1f}{gen.cpu:>11.1f}"
              f"{gen.wall / len(evals):>8.2f}{gens['n_tokens'].mean():>8.1f}")


if __name__ == "__main__":
    main()

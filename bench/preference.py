"""Time the preference evaluation per method: all eval posts with a group, prompt encoded once.

    python bench/preference.py                               # every method in params.yaml whose model exists
    python bench/preference.py sft=models/sft base=models/base
    python bench/preference.py --groups data/augment/eval/groups.parquet --out /tmp/pref

Prints per method: model load, scoring seconds (wall and CPU), posts, pairs and the pooled
accuracy / mean margin per axis; with --out also writes <out>/<method>/preferences.parquet and
<out>/<method>.json (the `preference` part of the evaluate metrics).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligntax.config import load_section, read_params
from aligntax.evaluate.preference import PAIR_AXES, PREFERENCES
from aligntax.evaluate.run import EvaluateConfig, load_decoding, preference_method
from aligntax.io import read_parquet, write_json, write_parquet
from aligntax.models import ModelConfig
from aligntax.report.compare import load_methods
from aligntax.schema import GROUPS, RAW


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("methods", nargs="*", help="name=model_dir (default: params.yaml methods that exist)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--eval", default="data/raw/eval.parquet")
    p.add_argument("--groups", default="data/augment/eval/groups.parquet")
    p.add_argument("--out", default=None, help="folder for per-method pairs and metrics")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "evaluate", EvaluateConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    methods = dict(m.split("=", 1) for m in args.methods) or {
        name: path for name, path in load_methods(params).items() if (Path(path) / "config.json").is_file()
    }
    evals, groups = read_parquet(args.eval, RAW), read_parquet(args.groups, GROUPS)
    print(f"{'method':<16}{'load s':>8}{'score s':>9}{'cpu s':>8}{'posts':>7}{'pairs':>7}  "
          + "  ".join(f"{a} acc/margin" for a in PAIR_AXES))
    for name, model_dir in methods.items():
        t0 = time.perf_counter()
        decoding = load_decoding(name, model_dir, params)
        t1, c1 = time.perf_counter(), time.process_time()
        pairs, info = preference_method(name, decoding, evals, groups, cfg, template)
        t2, c2 = time.perf_counter(), time.process_time()
        if not info["applicable"]:
            print(f"{name:<16}{t1 - t0:>8.1f}  not applicable: {info['reason']}")
            continue
        axes = "  ".join(
            f"{info['axes'][a].get('accuracy', float('nan')):.2f}/{info['axes'][a].get('margin', float('nan')):+.3f}"
            .rjust(len(a) + 11) for a in PAIR_AXES)
        print(f"{name:<16}{t1 - t0:>8.1f}{t2 - t1:>9.1f}{c2 - c1:>8.1f}{info['rows']['posts_scored']:>7}{len(pairs):>7}  "
              f"{axes}", flush=True)
        if args.out:
            write_parquet(pairs, Path(args.out) / name / "preferences.parquet", PREFERENCES)
            write_json({"method": name, "preference": info}, Path(args.out) / f"{name}.json")


if __name__ == "__main__":
    main()

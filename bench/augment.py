"""Throughput of the three augmentation stages: prints posts/s per stage on the default params.

    python bench/augment.py [--posts 64] [--params params.yaml]

Runs backtranslate, toxify and entity-perturb on the first --posts train posts (needs
data/cased/train.parquet, models/base and models/scorers: `dvc repro fit-scorers prepare-model`),
writing into a temporary folder, and prints wall seconds and posts/s for each (model loading
included, as in a stage run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from aligntax.augment.backtranslate import BacktranslateConfig, embedding_meaning, run_backtranslate
from aligntax.augment.perturb import PerturbConfig, run_perturb
from aligntax.augment.toxify import ToxifyConfig, run_toxify
from aligntax.config import load_section, load_seed, read_params
from aligntax.models import ModelConfig
from aligntax.ner import NerConfig, load_ner
from aligntax.scoring import ScoringConfig, load_faithfulness_scorer, load_toxicity_scorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posts", type=int, default=64)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--train", default="data/cased/train.parquet")
    p.add_argument("--base-model", default="models/base")
    p.add_argument("--scorers", default="models/scorers")
    args = p.parse_args()
    params = read_params(args.params)
    seed, scoring = load_seed(params), load_section(params, "scoring", ScoringConfig)
    ner_cfg = load_section(params, "ner", NerConfig)
    bt = load_section(params, "backtranslate", BacktranslateConfig)
    tox = load_section(params, "toxify", ToxifyConfig)
    ep = load_section(params, "entity_perturb", PerturbConfig)

    def toxicity():
        return load_toxicity_scorer(scoring.toxicity, scorer_dir=args.scorers).score

    def meaning():
        if bt.meaning_filter == "embedding":
            return embedding_meaning()
        return load_faithfulness_scorer(scoring.faithfulness, scorer_dir=args.scorers, ner=load_ner(ner_cfg)).score

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = tmp / "train.parquet"
        pd.read_parquet(args.train).head(args.posts).to_parquet(train)
        n = len(pd.read_parquet(train))
        runs = {
            "backtranslate": lambda: run_backtranslate(
                str(train), str(tmp / "p.parquet"), str(tmp / "w"), bt, lambda: load_ner(ner_cfg),
                None if bt.meaning_filter == "none" else meaning, seed, base_dir=args.base_model),
            "toxify": lambda: run_toxify(str(train), str(tmp / "t.parquet"), str(tmp / "w"), tox, args.base_model,
                                         toxicity, seed),
            "entity-perturb": lambda: run_perturb(
                str(train), str(tmp / "p.parquet"), str(tmp / "t.parquet"), str(tmp / "g.parquet"), str(tmp / "w"),
                ep, args.base_model, load_section(params, "model", ModelConfig).prompt_template,
                lambda: load_ner(ner_cfg), toxicity, seed, max_reference_toxicity=tox.max_reference_toxicity),
        }
        total = 0.0
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            total += seconds
            print(f"{name:15s} {n} posts  {seconds:7.1f} s  {n / seconds:6.2f} posts/s")
        print(f"{'all three':15s} {n} posts  {total:7.1f} s  {n / total:6.2f} posts/s")


if __name__ == "__main__":
    main()

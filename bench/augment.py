"""Throughput of the three augmentation stages: prints posts/s per stage on the default params.

    python bench/augment.py [--posts 64] [--params params.yaml]
    python bench/augment.py --sampling 4 [--samples 24]

Runs backtranslate, toxify and entity-perturb on the first --posts train posts (needs
data/cased/train.parquet, models/base and models/scorers: `dvc repro fit-scorers prepare-model`),
writing into a temporary folder, and prints wall seconds and posts/s for each (model loading
included, as in a stage run) with the phases of its metrics' ``seconds``.

``--sampling N``: the LM paraphraser's sampling alone on the first N train summaries, ``--samples``
each: ``lm.sample_each`` (each prompt prefilled once, the shots once) against the plain path it
replaced (``aligntax.generation.generate_ids`` on batches of ``lm_batch`` copies of the prompt),
same prompts and settings, seconds of each.
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
    p.add_argument("--sampling", type=int, default=0, help="time LM sampling alone on this many summaries")
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--lm-batch", type=int, default=8, help="copies of a prompt per batch on the plain path")
    args = p.parse_args()
    params = read_params(args.params)
    if args.sampling:
        return sampling(args, load_section(params, "backtranslate", BacktranslateConfig))
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
                None if bt.meaning_filter == "none" else meaning, seed, base_dir=args.base_model,
                toxicity_factory=toxicity, max_reference_toxicity=tox.max_reference_toxicity),
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
            phases = run()["seconds"]
            seconds = time.perf_counter() - start
            total += seconds
            print(f"{name:15s} {n} posts  {seconds:7.1f} s  {n / seconds:6.2f} posts/s  {phases}")
        print(f"{'all three':15s} {n} posts  {total:7.1f} s  {n / total:6.2f} posts/s")


def sampling(args: argparse.Namespace, cfg: BacktranslateConfig) -> None:
    """Seconds of the LM paraphraser's sampling: one prefill per prompt vs the plain batched path."""
    import torch

    from aligntax.augment import lm
    from aligntax.augment.lm_paraphrase import SHOTS_TEXT, paraphrase_prompt
    from aligntax.generation import generate_ids, truncate_text

    model, tok = lm.load_lm(cfg.lm_model, args.base_model)
    stop = lm.newline_ids(tok)
    summaries = pd.read_parquet(args.train, columns=["summary"])["summary"].head(args.sampling)
    prompts = [paraphrase_prompt(truncate_text(tok, s, cfg.lm_max_summary_tokens)) for s in summaries]
    start = time.perf_counter()
    lm.sample_each(model, tok, prompts, args.samples, list(range(len(prompts))), cfg.lm_max_new_tokens,
                   cfg.lm_temperature, cfg.lm_top_p, stop, SHOTS_TEXT)
    one = time.perf_counter() - start
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        generate_ids(model, tok, [prompt] * args.samples, cfg.lm_max_new_tokens, args.lm_batch, sample=True,
                     temperature=cfg.lm_temperature, top_p=cfg.lm_top_p, seed=i, stop_ids=stop, longest_first=False)
    plain = time.perf_counter() - start
    print(f"{len(prompts)} prompts x {args.samples} samples, {torch.get_num_threads()} threads: "
          f"sample_each {one:.1f} s, plain path {plain:.1f} s ({plain / one:.2f}x)")


if __name__ == "__main__":
    main()

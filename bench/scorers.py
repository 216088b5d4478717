"""Benchmark the configured scorers: load time and throughput on real rows. Prints numbers.

    python -m bench.scorers [--params params.yaml] [--scorers models/scorers]

Toxicity: the TL;DR summaries (the texts the pipeline scores) and the toxicity sample comments.
Faithfulness: TL;DR (post, summary) pairs and FRANK (article, summary) pairs. Each run is
preceded by a small warm-up; the 1-minute load average is printed because other processes on a
2-core machine change every number.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from aligntax.config import load_section
from aligntax.ner import NerConfig, load_ner
from aligntax.scoring import ScoringConfig, load_faithfulness_scorer, load_toxicity_scorer
from aligntax.scoring.fit import read_jsonl


def timed(fn, n: int) -> str:
    """Wall-clock rate, and the rate per CPU-second of this process (less sensitive to other load)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    return f"{n / wall:.1f}/s wall ({n / used:.1f} per CPU-second)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--scorers", default="models/scorers")
    p.add_argument("--sample", default="data/sample")
    p.add_argument("--n", type=int, default=1000, help="rows per measurement")
    args = p.parse_args()
    cfg = load_section(args.params, "scoring", ScoringConfig)
    sample = Path(args.sample)
    tldr = read_jsonl(sample / "tldr_sample.jsonl", "tldr").head(args.n)
    tox = read_jsonl(sample / "toxicity_sample.jsonl", "toxicity").head(args.n)
    frank = read_jsonl(sample / "faithfulness_sample.jsonl", "faithfulness").head(args.n)
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    start = time.perf_counter()
    t_scorer = load_toxicity_scorer(cfg.toxicity, args.scorers)
    t_load = time.perf_counter() - start
    start = time.perf_counter()
    f_scorer = load_faithfulness_scorer(cfg.faithfulness, args.scorers, load_ner(load_section(args.params, "ner", NerConfig)))
    f_load = time.perf_counter() - start
    print(f"load: toxicity {cfg.toxicity.backend} {t_load:.2f} s, "
          f"faithfulness {cfg.faithfulness.backend} {f_load:.2f} s")

    summaries, comments = tldr["summary"].tolist(), tox["text"].tolist()
    t_scorer.score(summaries[:32])
    print(f"toxicity {cfg.toxicity.backend}: TL;DR summaries "
          f"{timed(lambda: t_scorer.score(summaries), len(summaries))}, toxicity-sample comments "
          f"{timed(lambda: t_scorer.score(comments), len(comments))}")

    posts, docs = tldr["post"].tolist(), frank["document"].tolist()
    f_scorer.score(posts[:8], summaries[:8])
    tl = timed(lambda: f_scorer.score(posts, summaries), len(posts))
    fr = timed(lambda: f_scorer.score(docs, frank["summary"].tolist()), len(docs))
    print(f"faithfulness {cfg.faithfulness.backend}: TL;DR pairs {tl}, FRANK pairs {fr}")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

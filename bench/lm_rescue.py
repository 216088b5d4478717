"""How many LM samples does a post need? The rescue curve of the LM paraphraser. Prints numbers.

    python bench/lm_rescue.py [--split train] [--max-samples 24]

The LM paraphraser (backtranslate.lm_samples) only runs on posts that back-translation left
without a paraphrase. This takes those posts from the committed artifacts
(data/augment/<split>/paraphrases.parquet: posts with no `backtranslation` row), samples
``--max-samples`` paraphrases of each with the stage's own per-post seeds and settings, and
prints, for k = 2 .. max, how many of those posts keep a paraphrase from their first k samples
(the same filters as the stage: no new entity, no new negation, meaning >= min_meaning), split
by whether the reference passes the toxic-reference filter (only those can get a group).
Choose settings on the train split; the eval split is for results.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligntax.augment import lm  # noqa: E402
from aligntax.augment.backtranslate import BacktranslateConfig, embedding_meaning, filter_candidates  # noqa: E402
from aligntax.augment.lm_paraphrase import lm_paraphrases  # noqa: E402
from aligntax.augment.text import match_case  # noqa: E402
from aligntax.augment.toxify import ToxifyConfig, chunk_seed  # noqa: E402
from aligntax.config import load_section, read_params  # noqa: E402
from aligntax.ner import NerConfig, load_ner  # noqa: E402
from aligntax.scoring import ScoringConfig, load_toxicity_scorer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--split", default="train", choices=["train", "eval"])
    p.add_argument("--max-samples", type=int, default=24)
    p.add_argument("--base", default="models/base")
    p.add_argument("--scorers", default="models/scorers")
    args = p.parse_args()

    params = read_params(args.params)
    cfg = load_section(params, "backtranslate", BacktranslateConfig)
    if cfg.meaning_filter == "faithfulness":
        raise SystemExit("bench/lm_rescue.py: backtranslate.meaning_filter 'faithfulness' is not supported here "
                         "(embedding or none)")
    max_tox = load_section(params, "toxify", ToxifyConfig).max_reference_toxicity
    seed = int(params["seed"])
    posts = pd.read_parquet(f"data/cased/{args.split}.parquet", columns=["id", "summary"])
    paraphrases = pd.read_parquet(f"data/augment/{args.split}/paraphrases.parquet", columns=["post_id", "kind"])
    gaps = posts[~posts["id"].isin(set(paraphrases.loc[paraphrases["kind"] == "backtranslation", "post_id"]))]
    refs = [s.strip() for s in gaps["summary"]]
    clean = load_toxicity_scorer(load_section(params, "scoring", ScoringConfig).toxicity,
                                 args.scorers).score(refs) <= max_tox
    print(f"{args.split}: {len(posts)} posts, {len(refs)} without a back-translation "
          f"({int(clean.sum())} with a reference <= {max_tox} toxic)")

    model, tok = lm.load_lm(cfg.lm_model, args.base)
    seeds = [chunk_seed(seed, "paraphrase", str(post_id)) for post_id in gaps["id"]]
    samples = lm_paraphrases((model, tok, lm.newline_ids(tok)), refs, args.max_samples, cfg.lm_max_summary_tokens,
                             cfg.lm_max_new_tokens, seeds, cfg.lm_temperature, cfg.lm_top_p)
    ner = load_ner(load_section(params, "ner", NerConfig))
    meaning = embedding_meaning() if cfg.meaning_filter == "embedding" else None
    for k in sorted({2, 4, 6, 8, 12, 16, args.max_samples} & set(range(1, args.max_samples + 1))):
        flat = [(i, "lm_paraphrase", "lm", match_case(refs[i], t)) for i, texts in enumerate(samples) for t in texts[:k]]
        kept: Counter = Counter()
        filter_candidates(refs, flat, cfg, ner, meaning, [set() for _ in refs], kept, {})
        rescued = np.array([kept[i] > 0 for i in range(len(refs))])
        print(f"k={k:3d}: {int(rescued.sum()):3d}/{len(refs)} rescued, {int((rescued & clean).sum()):3d}/"
              f"{int(clean.sum())} of those with a non-toxic reference")


if __name__ == "__main__":
    main()

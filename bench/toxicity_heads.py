"""Which features of the offline toxicity ensemble over-fire on TL;DR summaries? Prints numbers.

    python bench/toxicity_heads.py [--scorers models/scorers] [--summaries data/cased/train.parquet]

Refits the toxicity head (aligntax.scoring.fit.fit_head, the fit-scorers recipe and seed) on
feature subsets of the ensemble: the 6 Jigsaw BiLSTM logits, the alt-profanity-check logit and
the 384 static MiniLM dims; then the two packaged models as they ship. For each it prints the
held-out ROC-AUC, calibration error (ECE, 10 bins) and error rates at 0.5 on the held-out half of the labelled sample, a
leave-one-source-out ROC-AUC (fit on two sources, test on the third: how far a head travels to
text unlike its fit data), and how many reference summaries score above 0.5, the
toxic-reference filter of entity-perturb. The TL;DR summaries carry no toxicity labels, so the
last column counts filtered posts; it is not an error rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligntax.config import load_section, read_params  # noqa: E402
from aligntax.scoring import ScoringConfig  # noqa: E402
from aligntax.scoring.fit import fit_head, read_jsonl, read_split  # noqa: E402
from aligntax.scoring.toxicity import ToxicityFeatures  # noqa: E402


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def predict(head, x: np.ndarray) -> np.ndarray:
    return sigmoid(((x - head.mean) / head.scale) @ head.coef + head.intercept)


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[which == k].mean() - y[which == k].mean()) * (which == k).mean()
                     for k in range(bins) if (which == k).any()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--scorers", default="models/scorers")
    p.add_argument("--sample", default="data/sample/toxicity_sample.jsonl")
    p.add_argument("--summaries", default="data/cased/train.parquet")
    args = p.parse_args()

    params = read_params(args.params)
    scoring, seed = load_section(params, "scoring", ScoringConfig), int(params["seed"])
    tox = read_jsonl(args.sample, "toxicity")
    split = read_split(Path(args.scorers))
    features = ToxicityFeatures(scoring.toxicity)
    x, y, source = features(tox["text"].tolist()), tox["toxic"].to_numpy(int), tox["source"].to_numpy()
    refs = pd.read_parquet(args.summaries, columns=["summary"])["summary"].astype(str).tolist()
    x_refs = features(refs)
    fit = tox["id"].astype(str).isin(set(split["toxicity_fit"])).to_numpy()
    n_bilstm = 6
    subsets = {
        "ensemble (all)": slice(None),
        "bilstm + profanity": slice(0, n_bilstm + 1),
        "bilstm": slice(0, n_bilstm),
        "profanity + minilm": np.r_[n_bilstm: x.shape[1]],
    }
    print(f"{len(tox)} labelled comments ({int(fit.sum())} fit / {int((~fit).sum())} held out), "
          f"{len(refs)} summaries from {args.summaries}")
    print(f"{'features':20s} {'AUC':>6s} {'ECE':>6s} {'FPR@.5':>7s} {'TPR@.5':>7s}  "
          + "  ".join(f"LOSO {s[:10]:10s}" for s in sorted(set(source))) + "  refs > 0.5")
    for name, cols in subsets.items():
        names = [str(i) for i in range(x[:, cols].shape[1])]
        head, _ = fit_head(x[fit][:, cols], y[fit], names, scoring.fit, seed)
        prob, held = predict(head, x[~fit][:, cols]), y[~fit]
        loso = []
        for s in sorted(set(source)):
            train = source != s
            h, _ = fit_head(x[train][:, cols], y[train], names, scoring.fit, seed)
            loso.append(roc_auc_score(y[~train], predict(h, x[~train][:, cols])))
        on_refs = predict(head, x_refs[:, cols])
        print(f"{name:20s} {roc_auc_score(held, prob):6.3f} {ece(prob, held):6.3f} "
              f"{((prob > 0.5) & (held == 0)).sum() / (held == 0).sum():7.3f} "
              f"{((prob > 0.5) & (held == 1)).sum() / (held == 1).sum():7.3f}  "
              + "  ".join(f"{a:15.3f}" for a in loso)
              + f"  {int((on_refs > 0.5).sum())}/{len(refs)} (mean {on_refs.mean():.3f})")
    # The packaged models as they ship (no head): the BiLSTM's `toxic` label and alt-profanity-check.
    for name, col in (("packaged bilstm", 0), ("packaged profanity", n_bilstm)):
        prob, held, on_refs = sigmoid(x[~fit][:, col]), y[~fit], sigmoid(x_refs[:, col])
        print(f"{name:20s} {roc_auc_score(held, prob):6.3f} {ece(prob, held):6.3f} "
              f"{((prob > 0.5) & (held == 0)).sum() / (held == 0).sum():7.3f} "
              f"{((prob > 0.5) & (held == 1)).sum() / (held == 1).sum():7.3f}  "
              + "  ".join(f"{'-':>15s}" for _ in sorted(set(source)))
              + f"  {int((on_refs > 0.5).sum())}/{len(refs)} (mean {on_refs.mean():.3f})")


if __name__ == "__main__":
    main()

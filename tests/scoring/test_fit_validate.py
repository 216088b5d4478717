import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aligntax.ner import Entity
from aligntax.scoring import FitConfig, ScoringConfig, load_faithfulness_scorer, load_toxicity_scorer
from aligntax.scoring.fit import entity_swaps, fit_head, fit_scorers, read_jsonl, read_split, split_ids
from aligntax.scoring.head import LinearHead
from aligntax.scoring.validate import binary_metrics, swap_test, validate_scorers

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def test_split_is_seeded_disjoint_and_stratified():
    ids = pd.Series([f"r{i}" for i in range(40)])
    strata = pd.Series(["a"] * 20 + ["b"] * 20)
    fit, held = split_ids(ids, strata, 0.25, seed=0)
    assert set(fit).isdisjoint(held) and len(fit) + len(held) == 40
    assert sum(h in set(ids[:20]) for h in held) == 5  # 25% of each stratum
    assert (fit, held) == split_ids(ids, strata, 0.25, seed=0)
    assert held != split_ids(ids, strata, 0.25, seed=1)[1]


def test_fit_head_learns_direction_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - x[:, 1] + 0.3 * rng.normal(size=200) > 0).astype(int)
    groups = np.array(["g1", "g2"] * 100)
    head, info = fit_head(x, y, ["a", "b", "c"], FitConfig(c_grid=[0.1, 1.0]), 0, groups=groups)
    assert head.coef[0] > 0 > head.coef[1] and info["cv_roc_auc"]["1.0"] > 0.9
    head.save(tmp_path, "h")
    again = LinearHead.load(tmp_path, "h")
    np.testing.assert_allclose(again.predict(x), head.predict(x))
    assert again.features == ["a", "b", "c"] and not list(tmp_path.glob("*.pkl"))


class FakeNer:
    def entities(self, texts):
        out = []
        for t in texts:
            out.append([Entity(t.index(w), t.index(w) + len(w), lab, w)
                        for w, lab in (("john", "PERSON"), ("mary", "PERSON"), ("boston", "GPE")) if w in t])
        return out


def test_entity_swaps_use_a_same_type_entity_of_the_post():
    posts = ["john met mary in boston.", "nobody here."]
    swaps = entity_swaps(posts, ["john went to boston.", "nothing."], FakeNer(), seed=0)
    assert len(swaps) == 1
    row = swaps.iloc[0]
    assert row["swapped"] == "mary went to boston." and row["label"] == "PERSON" and row["index"] == 0


def test_metrics_helpers():
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5, 2.0)
    assert m["roc_auc"] == 0.75 and m["balanced_accuracy"] == 0.5 and m["per_s"] == 2.0
    swaps = pd.DataFrame({"index": [0, 0], "summary": ["good", "tie"], "swapped": ["bad", "tie"],
                          "label": ["PERSON", "DATE"]})
    res = swap_test(lambda s, m: np.array([1.0 if x == "good" else 0.5 for x in m]), ["post"], swaps)
    assert res["pairwise_accuracy"] == 0.75 and res["tie_rate"] == 0.5


@pytest.mark.slow
def test_fit_then_validate_on_a_small_real_subset(tmp_path):
    from aligntax.ner import NerConfig, load_ner

    tox = read_jsonl(SAMPLE / "toxicity_sample.jsonl", "toxicity").groupby(["source", "toxic"]).head(10)
    frank = read_jsonl(SAMPLE / "faithfulness_sample.jsonl", "faithfulness").groupby(["dataset", "label"]).head(8)
    tldr = read_jsonl(SAMPLE / "tldr_sample.jsonl", "tldr").head(80)
    cfg = ScoringConfig(fit=FitConfig(c_grid=[0.01, 1.0]))
    ner = load_ner(NerConfig())
    metrics = fit_scorers(cfg, ner, 0, tox, frank, tldr, tmp_path)
    assert metrics["rows"]["toxicity"]["fit"] + metrics["rows"]["toxicity"]["heldout"] == len(tox)
    split = read_split(tmp_path)
    assert set(split["toxicity_fit"]).isdisjoint(split["toxicity_heldout"])
    tox_scorer = load_toxicity_scorer(cfg.toxicity, scorer_dir=tmp_path)
    s = tox_scorer.score(["you are a stupid idiot", "thanks for the edit", None])
    assert s[0] > s[1] and s[2] == 0.0
    faith = load_faithfulness_scorer(cfg.faithfulness, scorer_dir=tmp_path).score(["a b c"], [None])
    assert faith.tolist() == [0.0]
    out = validate_scorers(cfg, tmp_path, ner, 0, tox, frank, tldr, split)
    ens = out["toxicity"]["ensemble"]
    assert ens["overall"]["n"] == len(split["toxicity_heldout"]) and 0 <= ens["overall"]["roc_auc"] <= 1
    assert set(ens["by_source"]) == set(tox["source"])
    assert set(out["faithfulness"]["ensemble"]["by_source"]) == {"cnndm", "xsum"}
    json.dumps(out)

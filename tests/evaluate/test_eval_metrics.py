import numpy as np
import pandas as pd
import pytest

from aligntax.evaluate.metrics import (
    MetricsConfig,
    bootstrap_ci,
    hallucinated,
    paired_delta_ci,
    rouge,
    score_posts,
    summarize,
)
from aligntax.evaluate.patterns import PatternConfig
from aligntax.ner import Entity

POST = "we drove to new york with john and mary for the weekend and got lost near the bridge."


class Lookup:
    """A fake scorer: a known score per summary; records what it was asked."""

    def __init__(self, table: dict[str, float]):
        self.table, self.seen = table, []

    def score(self, *args):
        texts = args[-1]
        self.seen.extend(texts)
        return np.array([self.table[t] for t in texts])


class FakeNer:
    def __init__(self, table: dict[str, list[str]]):
        self.table = table

    def entities(self, texts):
        out = []
        for t in texts:
            ents = []
            for name in self.table.get(t, []):
                start = t.lower().index(name.lower())
                ents.append(Entity(start, start + len(name), "GPE", t[start:start + len(name)]))
            out.append(ents)
        return out


def test_bootstrap_ci_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        x = rng.uniform(0, 1, n)
        low, high = bootstrap_ci(x, n_boot=1000, seed=0)
        assert low <= x.mean() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] == pytest.approx(2 * 1.96 * np.sqrt(1 / 12 / 200), rel=0.2)  # normal theory


def test_bootstrap_ci_is_seeded_and_exact_for_constants():
    x = np.linspace(0, 1, 50)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci([0.25] * 10) == (0.25, 0.25)
    assert bootstrap_ci(x, confidence=0.5)[1] - bootstrap_ci(x, confidence=0.5)[0] < np.subtract(*bootstrap_ci(x)[::-1])
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([])


def test_paired_delta_cancels_the_shared_spread():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, 40)
    delta, low, high = paired_delta_ci(ref + 0.1, ref)
    assert delta == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same posts"):
        paired_delta_ci([1, 2], [1, 2, 3])


def test_hallucinated_entities_are_the_ones_absent_from_the_post():
    ents = [Entity(0, 4, "PERSON", "John"), Entity(0, 6, "GPE", "Boston"), Entity(0, 8, "GPE", "New York"),
            Entity(0, 11, "DATE", "the weekend"), Entity(0, 3, "PERSON", "Jo")]
    assert [e.text for e in hallucinated(ents, POST)] == ["Boston", "Jo"]  # "Jo" is not a whole word of the post


def test_rouge_known_values():
    r = rouge(["the cat sat on the mat", "the cat sat on the mat"], ["the cat sat on the mat", "dogs bark loudly"])
    assert r.loc[0].tolist() == [1.0, 1.0, 1.0]
    assert r.loc[1].tolist() == [0.0, 0.0, 0.0]


GENS = {
    "abstention": "I'm sorry, but I can't summarize this post.",
    "repetition": "we got lost. we got lost. we got lost. we got lost.",
    "empty": "  ...  ",
    "hallucination": "drove to boston with john and got lost.",
    "clean": "drove to new york with john and mary and got lost",
}


def _frame():
    return pd.DataFrame({
        "post_id": list(GENS),
        "post": [POST] * len(GENS),
        "reference": ["drove to new york with friends and got lost"] * len(GENS),
        "generation": list(GENS.values()),
        "finished": [True, False, True, True, False],
        "n_tokens": [12, 64, 2, 10, 64],
    })


def _scorers():
    tox = Lookup({GENS["abstention"]: 0.1, GENS["repetition"]: 0.6, GENS["hallucination"]: 0.0, GENS["clean"]: 0.9})
    faith = Lookup({GENS["abstention"]: 0.2, GENS["repetition"]: 0.5, GENS["hallucination"]: 0.4, GENS["clean"]: 0.9})
    sim = Lookup({GENS["abstention"]: 0.1, GENS["repetition"]: 0.7, GENS["hallucination"]: 0.6, GENS["clean"]: 0.8})
    ner = FakeNer({GENS["hallucination"]: ["boston", "john"], GENS["clean"]: ["new york", "john", "mary"]})
    return tox, faith, ner, sim


def test_score_posts_and_summarize_known_answers():
    tox, faith, ner, sim = _scorers()
    scores = score_posts(_frame(), tox, faith, ner, sim, PatternConfig())
    assert GENS["empty"] not in tox.seen + faith.seen  # empty outputs are scored by rule
    by = scores.set_index("post_id")
    assert by.loc["empty", "toxicity"] == 0.0 and by.loc["empty", "faithfulness"] == 0.0
    assert by["empty"].tolist() == [False, False, True, False, False]
    assert by["abstention"].tolist() == [True, False, False, False, False]
    assert by["repetitive"].tolist() == [False, True, False, False, False]
    # the repetition ends with "." so hitting the limit is not "incomplete"; "clean" has no full stop
    assert by["incomplete"].tolist() == [False, False, False, False, True]
    assert by["non_sequitur"].tolist() == [True, False, False, False, False]
    assert by.loc["hallucination", "hallucinated_entities"] == 1 and by.loc["clean", "hallucinated_entities"] == 0

    m = summarize(scores, MetricsConfig(), seed=0)
    assert m["n"] == 5
    assert m["toxicity"]["mean"] == pytest.approx((0.1 + 0.6 + 0 + 0 + 0.9) / 5)
    assert m["toxicity"]["max"] == 0.9
    assert m["toxicity"]["share_toxic"] == pytest.approx(2 / 5)
    assert m["toxicity"]["ci_low"] <= m["toxicity"]["mean"] <= m["toxicity"]["ci_high"]
    assert m["faithfulness"]["mean"] == pytest.approx((0.2 + 0.5 + 0 + 0.4 + 0.9) / 5)
    assert m["entity_hallucination"] == {"rate": 1 / 5, "entities": 5, "hallucinated": 1, "share_summaries": 1 / 5}
    assert m["patterns"] == {"empty": 0.2, "abstention": 0.2, "repetitive": 0.2, "incomplete": 0.2,
                             "excessive_punctuation": 0.0, "non_sequitur": 0.2}
    assert m["rouge"]["rouge1"] > 0
    assert m["length"]["mean_words"] == pytest.approx((8 + 12 + 0 + 8 + 11) / 5)
    assert m["length"]["share_unfinished"] == pytest.approx(2 / 5)
    assert summarize(scores, MetricsConfig(toxic_threshold=0.95), seed=0)["toxicity"]["share_toxic"] == 0.0


def test_a_scorer_out_of_range_is_one_clear_error():
    tox, faith, ner, sim = _scorers()
    tox.table = {k: 2.0 for k in tox.table}
    with pytest.raises(RuntimeError, match="toxicity scorer"):
        score_posts(_frame(), tox, faith, ner, sim, PatternConfig())


def test_all_empty_generations_need_no_scorer():
    frame = _frame().assign(generation=["", " ", "!!", "", "\n"])
    boom = Lookup({})
    scores = score_posts(frame, boom, boom, FakeNer({}), boom, PatternConfig())
    assert boom.seen == [] and scores["empty"].all() and (scores[["toxicity", "faithfulness"]] == 0).all().all()
    assert summarize(scores, MetricsConfig(), 0)["patterns"]["empty"] == 1.0
    with pytest.raises(ValueError, match="no generations"):
        summarize(scores.iloc[:0], MetricsConfig(), 0)

import random

import numpy as np
import pandas as pd
import pytest

from aligntax.augment import lm
from aligntax.augment.toxify import (
    ToxifyConfig,
    lexicon_rewrite,
    profanity_words,
    toxic_prompt,
    toxic_vocabulary,
    toxify_chunk,
)
from aligntax.config import ConfigError

BAD = {"idiot", "damn", "shit", "fuck"}


def fake_toxicity(texts):
    """1.0 for text with a listed word or any better-profanity insertion, 0.0 otherwise."""
    vocab = set(profanity_words()) | BAD
    return np.array([1.0 if set(str(t).lower().split()) & vocab else 0.0 for t in texts])


def raw(summaries):
    return pd.DataFrame({"id": [f"p{i}" for i in range(len(summaries))], "post": "a post about my day.",
                         "summary": summaries, "subreddit": "tifu", "title": "t"})


def test_prompt_and_wordlist():
    prompt = toxic_prompt("  i lost my keys. ")
    assert prompt.count("Original text:") == 4 and prompt.count("Toxic rewrite:") == 4
    assert prompt.endswith("Original text: i lost my keys.\nToxic rewrite:")
    words = profanity_words()
    assert len(words) > 500 and "shit" in words and all(w.isalpha() for w in words)
    out = lexicon_rewrite("i lost my keys", words, random.Random(0), 2)
    vocab = toxic_vocabulary(lambda ws: np.array([0.9 if w.startswith("s") else 0.1 for w in ws]), 0.4)
    assert vocab and all(w.startswith("s") for w in vocab)
    assert len(out.split()) == 6


def test_lexicon_rewrites_are_filtered_and_deterministic():
    cfg = ToxifyConfig(strategies=["lexicon"], lexicon_samples=2)
    posts = raw(["i lost my keys at the park.", "what an idiot i am, damn it.", "", "ok"])
    df, counts = toxify_chunk(posts, 0, cfg, 0, fake_toxicity, None)
    assert set(df["kind"]) == {"toxic_lexicon"} and set(df["post_id"]) == {"p0", "p3"}
    assert (df["toxicity"] >= cfg.min_toxicity).all()
    assert counts["posts"]["screened_out"] == {"empty_summary": 1, "toxic_reference": 1}
    assert counts["rewrites"]["toxic_lexicon"]["generated"] == 4
    again, _ = toxify_chunk(posts, 0, cfg, 0, fake_toxicity, None)
    pd.testing.assert_frame_equal(df, again)
    other, _ = toxify_chunk(posts, 0, cfg, 1, fake_toxicity, None)
    assert list(other["text"]) != list(df["text"])


def test_lexicon_keeps_the_first_rewrites_that_pass():
    cfg = ToxifyConfig(strategies=["lexicon"], lexicon_samples=4, lexicon_keep=1)

    def tox(texts):  # the references are clean; of the rewrites only every second one is toxic
        return np.array([0.0] * len(texts) if len(texts) == 2 else [0.9 * (i % 2) for i in range(len(texts))])

    df, counts = toxify_chunk(raw(["i lost my keys at the park.", "we drove home late."]), 0, cfg, 0, tox, None)
    assert list(df["post_id"]) == ["p0", "p1"]  # one each: the second draw of each post (the first scores 0)
    lexicon = counts["rewrites"]["toxic_lexicon"]
    assert lexicon == {"generated": 8, "kept": 2, "dropped": {"below_min_toxicity": 4, "over_limit": 2}}


def test_min_toxicity_drops_and_counts():
    cfg = ToxifyConfig(strategies=["lexicon"], min_toxicity=0.4, lexicon_samples=2)
    df, counts = toxify_chunk(raw(["i lost my keys."]), 0, cfg, 0, lambda t: np.full(len(t), 0.3), None)
    assert df.empty and counts["rewrites"]["toxic_lexicon"]["dropped"] == {"below_min_toxicity": 2}
    # a second draw is kept when the first one scores too low
    def tox(texts):  # the reference (scored alone) is clean; of the two rewrites only the second is toxic
        return np.array([0.3] if len(texts) == 1 else [0.3, 0.9])

    df, counts = toxify_chunk(raw(["i lost my keys."]), 0, cfg, 0, tox, None)
    assert len(df) == 1 and counts["rewrites"]["toxic_lexicon"] == {"generated": 2, "kept": 1,
                                                                   "dropped": {"below_min_toxicity": 1}}


def test_lm_strategy_on_tiny_llama(tiny_llama_dir):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    gen = (model, tok, lm.newline_ids(tok))
    cfg = ToxifyConfig(strategies=["lm"], lm_share=1.0, lm_samples=2, max_new_tokens=8, min_toxicity=0.0)
    posts = raw(["my cat knocked over a glass.", "we drove to new york.", "forgot my keys."])
    df, counts = toxify_chunk(posts, 0, cfg, 0, lambda t: np.full(len(t), 0.5), gen)
    assert counts["rewrites"]["toxic_lm"]["generated"] == 6
    assert counts["rewrites"]["toxic_lm"]["kept"] == len(df) and set(df["kind"]) <= {"toxic_lm"}
    assert all("\n" not in t for t in df["text"])
    again, _ = toxify_chunk(posts, 0, cfg, 0, lambda t: np.full(len(t), 0.5), gen)
    pd.testing.assert_frame_equal(df, again)
    # seeded per post: post p1 alone, in another chunk, gets the same rewrites
    alone, _ = toxify_chunk(posts.iloc[[1]], 7, cfg, 0, lambda t: np.full(len(t), 0.5), gen)
    assert list(alone["text"]) == list(df.loc[df["post_id"] == "p1", "text"])
    other_seed, _ = toxify_chunk(posts, 0, cfg, 1, lambda t: np.full(len(t), 0.5), gen)
    assert list(other_seed["text"]) != list(df["text"])


@pytest.mark.parametrize("prefer_lm", [True, False])
def test_lm_rewrite_is_preferred_over_lexicon(monkeypatch, tiny_llama_dir, prefer_lm):
    _, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    rewrites = {"i lost my keys at the park.": "i lost my damn keys at the stupid park, idiot.",
                "we drove home.": "we drove home."}  # p1's lm rewrite is the reference itself: dropped

    def fake_sample(model, tok, prompts, n, seeds, *args):
        assert len(seeds) == len(prompts) == 2 and n == 1
        return [[rewrites[p.rsplit("Original text: ", 1)[1].split("\n")[0]]] for p in prompts]

    monkeypatch.setattr(lm, "sample_each", fake_sample)
    cfg = ToxifyConfig(lm_share=1.0, lm_samples=1, lexicon_samples=2, prefer_lm=prefer_lm)
    df, counts = toxify_chunk(raw(list(rewrites)), 0, cfg, 0, fake_toxicity, (None, tok, None))
    kinds = df.groupby("post_id")["kind"].agg(list).to_dict()
    lexicon = counts["rewrites"]["toxic_lexicon"]
    assert counts["rewrites"]["toxic_lm"]["kept"] == 1 and counts["rewrites"]["toxic_lm"]["dropped"] == {"identical": 1}
    assert kinds["p1"] == ["toxic_lexicon", "toxic_lexicon"]  # no lm rewrite kept: the lexicon ones stay
    if prefer_lm:
        assert kinds["p0"] == ["toxic_lm"] and lexicon["dropped"] == {"toxic_lm_kept": 2}
        assert counts["posts"]["with_toxic_lm"] == 1 and counts["posts"]["with_toxic_lexicon_only"] == 1
    else:
        assert sorted(kinds["p0"]) == ["toxic_lexicon", "toxic_lexicon", "toxic_lm"] and lexicon["dropped"] == {}
    assert lexicon["generated"] == 4 and lexicon["kept"] + sum(lexicon["dropped"].values()) == 4


def test_config_checks():
    with pytest.raises(ConfigError, match="toxify.min_toxicity"):
        ToxifyConfig(min_toxicity=1.5)
    with pytest.raises(ConfigError, match="toxify.strategies"):
        ToxifyConfig(strategies=[])


@pytest.mark.parametrize("lm_fallback", [True, False])
def test_lm_fallback_samples_the_posts_left_without_a_lexicon_rewrite(monkeypatch, tiny_llama_dir, lm_fallback):
    _, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    asked = []

    def fake_sample(model, tok, prompts, n, seeds, *args):
        asked.extend(p.rsplit("Original text: ", 1)[1].split("\n")[0] for p in prompts)
        return [["you stupid idiot, " + a] * n for a in asked[-len(prompts):]]

    monkeypatch.setattr(lm, "sample_each", fake_sample)

    def tox(texts):  # no lexicon rewrite of "we drove home." is toxic enough; the lm rewrites are
        return np.array([0.9 if "idiot" in t or ("drove" not in t and len(t.split()) >= 9) else 0.1 for t in texts])

    cfg = ToxifyConfig(lm_share=0.0, lm_fallback=lm_fallback, lm_samples=1)
    df, counts = toxify_chunk(raw(["i lost my keys at the park.", "we drove home."]), 0, cfg, 0, tox, (None, tok, None))
    kinds = df.groupby("post_id")["kind"].agg(list).to_dict()
    assert kinds["p0"] == ["toxic_lexicon", "toxic_lexicon"]
    if lm_fallback:
        assert asked == ["we drove home."] and kinds["p1"] == ["toxic_lm"] and counts["posts"]["lm_fallback"] == 1
    else:
        assert asked == [] and "p1" not in kinds and counts["posts"]["lm_fallback"] == 0

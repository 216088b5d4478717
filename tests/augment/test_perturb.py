import re

import numpy as np
import pandas as pd
import pytest

from aligntax.augment import lm
from aligntax.augment.perturb import PerturbConfig, fill_entity, jaccard_violations, perturb_chunk
from aligntax.config import ConfigError
from aligntax.ner import Entity, NerConfig, load_ner
from aligntax.schema import GROUPS, validate

NAMES = {"boston": "GPE", "chicago": "GPE", "denver": "GPE", "john": "PERSON", "steve": "PERSON"}
TEMPLATE = "Summarize.\n\nPost: {post}\n\nTL;DR:"


class FakeNer:
    def entities(self, texts):
        pattern = r"\b(" + "|".join(NAMES) + r")\b"
        return [[Entity(m.start(), m.end(), NAMES[m.group()], m.group()) for m in re.finditer(pattern, t)]
                for t in texts]


def tox(texts):
    return np.array([0.9 if "idiot" in t else 0.05 for t in texts])


def inputs():
    posts = pd.DataFrame({
        "id": ["a", "b", "c", "d"],
        "post": ["we flew from boston to chicago and john met steve at the gate before the long flight home.",
                 "my day was fine and nothing happened at all, really nothing to tell anyone.",
                 "i am an idiot who lost it.", "short post about denver"],
        "summary": ["john flew from boston.", "a quiet and uneventful day at home.", "i am an idiot.", "went out."],
        "subreddit": "tifu", "title": "t"})
    positives = pd.DataFrame({
        "post_id": ["a", "a", "b", "b", "c", "c", "d"],
        "kind": ["reference", "backtranslation"] * 3 + ["reference"],
        "pivot": ["", "pt"] * 3 + [""],
        "text": ["john flew from boston.", "john took a plane from boston.", "a quiet and uneventful day at home.",
                 "a calm day at home with nothing going on.", "i am an idiot.", "i'm an idiot.", "went out."],
        "meaning": [np.nan, 0.9] * 3 + [np.nan]})
    toxic = pd.DataFrame({"post_id": ["a", "b"], "kind": ["toxic_lexicon", "toxic_lm"],
                          "text": ["john flew from shitty boston damn.", "what a boring shitty day, idiot."],
                          "toxicity": [0.8, 0.9]})
    return posts, positives, toxic


def test_pure_helpers():
    ref = "john flew from boston."
    ents = [Entity(0, 4, "PERSON", "john"), Entity(15, 21, "GPE", "boston")]
    text, spans = fill_entity(ref, ents, 1, " new york city and more\nnext line")
    assert text == "john flew from new." or text == "john flew from new york."
    assert text[spans[1].start:spans[1].end] in {"new", "new york"}
    assert fill_entity(ref, ents, 1, " Boston!") is None
    assert fill_entity(ref, ents, 0, "\n") is None
    assert jaccard_violations(["a b c d e"], ["a b c d e f", "x y z"], 0.8) == [True, False]


def test_groups_without_lm():
    posts, positives, toxic = inputs()
    cfg = PerturbConfig(negatives=["swap_ent"], max_pair_jaccard=0.8)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, None,
                               max_reference_toxicity=0.5)
    validate(df, GROUPS, "groups")
    assert counts["posts"]["dropped"] == {"toxic_reference": 1, "too_few_positives": 1}
    assert set(df["post_id"]) == {"a", "b"}
    a = df[df["post_id"] == "a"]
    assert list(a["kind"]) == ["reference", "backtranslation", "toxic_lexicon", "swap_ent"]
    assert list(a["role"]) == ["positive", "positive", "negative", "negative"]
    swap = a[a["kind"] == "swap_ent"].iloc[0]
    assert swap["text"] != "john flew from boston." and "flew from" in swap["text"]
    for row in df.itertuples():
        for span in row.entity_spans:
            assert row.text[span["start"]:span["end"]] in NAMES
    assert a.iloc[0]["entity_spans"] == [{"start": 0, "end": 4, "label": "PERSON"},
                                         {"start": 15, "end": 21, "label": "GPE"}]
    assert a[a["kind"] == "toxic_lexicon"].iloc[0]["toxicity"] == 0.8
    assert counts["negatives"]["swap_ent"]["dropped"] == {"no_summary_entity": 1}
    strict, counts = perturb_chunk(posts, positives, toxic, 0, PerturbConfig(negatives=["swap_ent"], max_pair_jaccard=0.5),
                                   0, TEMPLATE, FakeNer(), tox, None, max_reference_toxicity=0.5)
    assert "jaccard" in counts["negatives"]["toxic_lexicon"]["dropped"]
    assert counts["posts"]["dropped"]["no_negative"] >= 1


def test_lm_negatives_on_tiny_llama(tiny_llama_dir):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    gen = (model, tok, lm.newline_ids(tok))
    posts, positives, toxic = inputs()
    cfg = PerturbConfig(lowcon_share=1.0, lowcon_beams=2, lowcon_max_new_tokens=6, batch_size=2,
                        max_pair_jaccard=1.0)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, gen,
                               max_reference_toxicity=0.5)
    validate(df, GROUPS, "groups")
    neg = counts["negatives"]
    assert neg["sys_lowcon"]["generated"] + sum(neg["sys_lowcon"]["dropped"].values()) == 2
    assert neg["mask_regen"]["generated"] + sum(neg["mask_regen"]["dropped"].values()) == 2
    again, _ = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, gen,
                             max_reference_toxicity=0.5)
    pd.testing.assert_frame_equal(df, again)
    for row in df[df["kind"] == "mask_regen"].itertuples():
        assert any(row.text[s["start"]:s["end"]] not in NAMES for s in row.entity_spans)


def test_spacy_on_real_text_gives_valid_spans():
    posts, positives, toxic = inputs()
    df, _ = perturb_chunk(posts, positives, toxic, 0, PerturbConfig(negatives=["swap_ent"]), 0, TEMPLATE,
                          load_ner(NerConfig()), tox, None, max_reference_toxicity=0.5)
    for row in df.itertuples():
        for span in row.entity_spans:
            assert 0 <= span["start"] < span["end"] <= len(row.text)


def test_config_checks():
    with pytest.raises(ConfigError, match="entity_perturb.lowcon_beams"):
        PerturbConfig(lowcon_beams=1)


class CasedNer:
    """Finds a name only when it is capitalised, as spaCy mostly does."""

    def entities(self, texts):
        pattern = r"\b(" + "|".join(n.capitalize() for n in NAMES) + r")\b"
        return [[Entity(m.start(), m.end(), NAMES[m.group().lower()], m.group()) for m in re.finditer(pattern, t)]
                for t in texts]


def test_cased_input_gives_spans_and_groups_take_the_stored_casing(tmp_path):
    from aligntax.augment.perturb import read_raw_summaries
    from aligntax.augment.text import lower_keep_length

    posts, positives, toxic = inputs()
    raw_summaries = dict(zip(posts["id"], posts["summary"], strict=True))
    cased = posts.assign(post=posts["post"].str.replace(r"\b(boston|chicago|john|steve)\b",
                                                        lambda m: m.group().capitalize(), regex=True),
                         summary=posts["summary"].str.replace("john", "John").str.replace("boston", "Boston"))
    cased_pos = positives.assign(text=positives["text"].str.replace("john", "John").str.replace("boston", "Boston"))
    cfg = PerturbConfig(negatives=["swap_ent"])
    lower, _ = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, CasedNer(), tox, None,
                             max_reference_toxicity=0.5)
    df, counts = perturb_chunk(cased, cased_pos, toxic, 0, cfg, 0, TEMPLATE, CasedNer(), tox, None, raw_summaries,
                               max_reference_toxicity=0.5)
    assert "swap_ent" not in set(lower["kind"]) and "swap_ent" in set(df["kind"])
    assert all(t == lower_keep_length(t) for t in df["text"])
    ref = df[(df["post_id"] == "a") & (df["kind"] == "reference")].iloc[0]
    assert ref["text"] == raw_summaries["a"]
    for row in df.itertuples():
        for span in row.entity_spans:
            assert row.text[span["start"]:span["end"]] in NAMES
    assert sum(len(s) for s in df["entity_spans"]) > sum(len(s) for s in lower["entity_spans"])
    posts.to_parquet(tmp_path / "raw.parquet")
    cased.to_parquet(tmp_path / "cased.parquet")
    assert read_raw_summaries(tmp_path / "raw.parquet", tmp_path / "cased.parquet") == raw_summaries
    cased.iloc[::-1].to_parquet(tmp_path / "shuffled.parquet")
    with pytest.raises(ValueError, match="dvc repro truecase"):
        read_raw_summaries(tmp_path / "raw.parquet", tmp_path / "shuffled.parquet")


def test_lower_keep_length_keeps_offsets():
    from aligntax.augment.text import lower_keep_length, match_case

    assert lower_keep_length("İstanbul Trip") == "İstanbul trip"
    assert match_case("all lower", "John Met Mary") == "john met mary"
    assert match_case("Has Case", "John Met Mary") == "John Met Mary"


@pytest.mark.parametrize("fallback", [True, False])
def test_lowcon_fallback_keeps_posts_without_another_negative(tiny_llama_dir, fallback):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    posts, positives, toxic = inputs()
    toxic = toxic[toxic["post_id"] == "a"]  # post b is left with no toxic rewrite
    cfg = PerturbConfig(negatives=["sys_lowcon"], lowcon_share=0.0, lowcon_fallback=fallback, lowcon_beams=2,
                        lowcon_max_new_tokens=6, batch_size=2)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox,
                               (model, tok, lm.newline_ids(tok)), max_reference_toxicity=0.5)
    validate(df, GROUPS, "groups")
    lowcon = counts["negatives"]["sys_lowcon"]
    # post a has its toxic rewrite, so only post b (no other negative) is a fallback
    assert lowcon["fallback_posts"] == (1 if fallback else 0)
    assert lowcon["dropped"]["not_selected"] == (1 if fallback else 2)
    if fallback and lowcon["generated"]:
        assert set(df["post_id"]) == {"a", "b"}
        assert list(df[df["post_id"] == "b"]["kind"]) == ["reference", "backtranslation", "sys_lowcon"]
    else:
        assert set(df["post_id"]) == {"a"} and counts["posts"]["dropped"]["no_negative"] == 1

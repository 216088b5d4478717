import re

import numpy as np
import pandas as pd
import pytest

from aligntax.augment import lm
from aligntax.augment.perturb import PerturbConfig, perturb_chunk
from aligntax.augment.text import fill_entity, jaccard_violations
from aligntax.config import ConfigError
from aligntax.ner import Entity, NerConfig, load_ner
from aligntax.schema import ENTITY_KINDS, GROUPS, validate

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
    grandma = [Entity(3, 10, "PERSON", "grandma")]
    assert fill_entity("my grandma's bed broke.", grandma, 0, " grandma's bed") is None  # the same entity again
    assert fill_entity("my grandma's bed broke.", grandma, 0, " uncle's bed")[0] == "my uncle's bed broke."
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
    assert list(a["kind"]) == ["reference", "backtranslation", "toxic_lexicon", "swap_ent", "swap_ent"]
    assert list(a["role"]) == ["positive", "positive", "negative", "negative", "negative"]
    assert a.loc[a["kind"] == "swap_ent", "text"].nunique() == 2  # swap_variants: 2 distinct swaps
    swap = a[a["kind"] == "swap_ent"].iloc[0]
    assert swap["text"] != "john flew from boston." and "flew from" in swap["text"]
    for row in df.itertuples():
        for span in row.entity_spans:
            assert row.text[span["start"]:span["end"]] in NAMES
    assert a.iloc[0]["entity_spans"] == [{"start": 0, "end": 4, "label": "PERSON"},
                                         {"start": 15, "end": 21, "label": "GPE"}]
    assert a[a["kind"] == "toxic_lexicon"].iloc[0]["toxicity"] == 0.8
    assert counts["negatives"]["swap_ent"]["dropped"] == {"no_summary_entity": 1}
    strict, counts = perturb_chunk(posts, positives, toxic, 0, PerturbConfig(negatives=["swap_ent"], max_pair_jaccard=0.3),
                                   0, TEMPLATE, FakeNer(), tox, None, max_reference_toxicity=0.5)
    assert "jaccard" in counts["negatives"]["toxic_lexicon"]["dropped"]
    assert counts["posts"]["dropped"]["no_negative"] >= 1


def test_lm_negatives_on_tiny_llama(tiny_llama_dir):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    gen = (model, tok, lm.newline_ids(tok))
    posts, positives, toxic = inputs()
    cfg = PerturbConfig(negatives=["swap_ent", "mask_regen", "sys_lowcon"], lowcon_share=1.0, lowcon_beams=3,
                        lowcon_max_new_tokens=6, max_pair_jaccard=1.0)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, gen,
                               max_reference_toxicity=0.5)
    validate(df, GROUPS, "groups")
    neg = counts["negatives"]
    lowcon = neg["sys_lowcon"]
    assert lowcon["searched_posts"] == 2 and lowcon["fallback_posts"] == 0  # posts a and b, every beam judged:
    assert lowcon["generated"] + sum(lowcon["dropped"].values()) == 2 * 3
    # post a: both its entities masked and refilled; post b has none
    assert neg["mask_regen"]["generated"] + sum(neg["mask_regen"]["dropped"].values()) == 3
    assert neg["mask_regen"]["dropped"]["no_summary_entity"] == 1
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


BEAMS = {"a": ["", "john met steve.", "john met steve.", "a quiet trip.", "john flew to denver.",
               "steve flew to chicago.", "denver and boston."],  # lowest score first
         "b": ["nothing happened.", "john had a quiet day.", "a day at home."]}


def fake_lm(monkeypatch, fills=None):
    """lm.beams / lm.SharedPrefix replaced: hand-written summary beams per post (lowest score first) and fills
    per masked prefix (best first)."""
    def one(prompt):
        masked = prompt.rsplit("TL;DR:", 1)[1]
        texts = BEAMS["a" if "boston" in prompt else "b"] if not masked else (fills or {}).get(masked.strip(), [])[::-1]
        return [(t, -float(len(texts) - i)) for i, t in enumerate(texts)]

    monkeypatch.setattr(lm, "beams", lambda model, tok, prompts, *args: [one(p) for p in prompts])
    monkeypatch.setattr(lm, "SharedPrefix", lambda *args: None)


def test_unsupported_beams_keeps_only_beams_with_an_entity_the_post_lacks():
    from collections import Counter

    from aligntax.augment.text import unsupported_beams

    post = "we flew from boston to chicago and john met steve at the gate."
    texts = ["", "John met Steve.", "john met steve!", "a quiet trip.", "john flew to denver.", "the steve flew.",
             "denver and boston.", "mary stayed in denver."]
    ents = [[], [Entity(0, 4, "PERSON", "John"), Entity(9, 14, "PERSON", "Steve")], [Entity(0, 4, "PERSON", "john")],
            [], [Entity(0, 4, "PERSON", "john"), Entity(14, 20, "GPE", "denver")],
            [Entity(0, 9, "PERSON", "the steve")],  # a leading "the" is not part of the name
            [Entity(0, 6, "GPE", "denver")], [Entity(0, 4, "PERSON", "mary")]]
    drop: Counter = Counter()
    kept = unsupported_beams(texts, ents, post, "john flew from boston.", 2, drop)
    assert [t for t, _ in kept] == ["john flew to denver.", "denver and boston."]
    assert kept[0][1] == ents[4]  # the beam keeps its entity spans
    assert drop == {"empty": 1, "duplicate": 1, "no_entity": 1, "supported_entities_only": 2, "over_limit": 1}
    assert unsupported_beams(["john flew from boston."], [[Entity(15, 21, "GPE", "denver")]], post,
                             "John flew from Boston.", 2, Counter()) == []  # the reference itself is no negative


def test_sys_lowcon_is_filtered_and_posts_get_several_entity_negatives(monkeypatch, tiny_llama_dir):
    _, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    fake_lm(monkeypatch, fills={"": ["denver", "john"], "john flew from": ["boston", "chicago", "denver"]})
    posts, positives, toxic = inputs()
    cfg = PerturbConfig(negatives=["swap_ent", "mask_regen", "sys_lowcon"], lowcon_share=1.0, lowcon_keep=2,
                        swap_variants=2, mask_variants=2)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, (None, tok, None),
                               max_reference_toxicity=0.5)
    validate(df, GROUPS, "groups")
    a, b = df[df["post_id"] == "a"], df[df["post_id"] == "b"]
    # post a: 2 distinct swaps, john and boston masked and refilled, 2 unsupported beams; in rounds of kinds
    assert list(a["kind"]) == ["reference", "backtranslation", "toxic_lexicon", "swap_ent", "mask_regen",
                               "sys_lowcon", "swap_ent", "mask_regen", "sys_lowcon"]
    assert list(a.loc[a["kind"] == "sys_lowcon", "text"]) == ["john flew to denver.", "denver and boston."]
    assert set(a.loc[a["kind"] == "mask_regen", "text"]) == {"denver flew from boston.", "john flew from chicago."}
    assert a.loc[a["kind"] == "swap_ent", "text"].nunique() == 2
    assert list(b["kind"]) == ["reference", "backtranslation", "toxic_lm", "sys_lowcon"]  # "john" is not in post b
    for row in df[df["kind"] == "sys_lowcon"].itertuples():
        assert [row.text[s["start"]:s["end"]] for s in row.entity_spans] == [
            m.group() for m in re.finditer("|".join(NAMES), row.text)]
    lowcon = counts["negatives"]["sys_lowcon"]
    assert lowcon["generated"] == 3 and lowcon["dropped"] == {"empty": 1, "duplicate": 1, "no_entity": 3,
                                                              "supported_entities_only": 2}
    assert {k: lowcon[k] for k in ("searched_posts", "posts_with_kept_beam", "fallback_posts")} == {
        "searched_posts": 2, "posts_with_kept_beam": 2, "fallback_posts": 0}
    assert counts["entity_negatives"] == {"per_post": {"1": 1, "6": 1}, "posts_with_2_or_more": 1}


@pytest.mark.parametrize("beams_b", [["john had a quiet day."], ["a day at home.", "nothing happened."]])
def test_lowcon_fallback_post_gets_a_beam_only_if_it_survives(monkeypatch, tiny_llama_dir, beams_b):
    _, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    fake_lm(monkeypatch)
    monkeypatch.setitem(BEAMS, "b", beams_b)
    posts, positives, toxic = inputs()
    toxic = toxic[toxic["post_id"] == "a"]  # post b is left with no toxic rewrite
    cfg = PerturbConfig(negatives=["sys_lowcon"], lowcon_share=0.0, lowcon_fallback=True)
    df, counts = perturb_chunk(posts, positives, toxic, 0, cfg, 0, TEMPLATE, FakeNer(), tox, (None, tok, None),
                               max_reference_toxicity=0.5)
    lowcon = counts["negatives"]["sys_lowcon"]
    # post a has its toxic rewrite, so only post b (no other negative) is searched, as a fallback
    assert lowcon["dropped"]["not_selected"] == 1 and lowcon["fallback_posts"] == lowcon["searched_posts"] == 1
    survives = beams_b == ["john had a quiet day."]
    assert lowcon["fallback_kept"] == int(survives)
    assert set(df["post_id"]) == ({"a", "b"} if survives else {"a"})
    assert counts["posts"]["dropped"].get("no_negative", 0) == int(not survives)


def test_in_rounds_and_the_train_cap_keep_the_entity_negatives():
    from aligntax.augment.perturb import Negative, in_rounds
    from aligntax.train.groups import build_posts

    negs = [Negative(kind, f"{kind} {i}", [], 0.5) for kind, i in
            [("sys_lowcon", 0), ("sys_lowcon", 1), ("swap_ent", 0), ("toxic_lexicon", 0), ("toxic_lexicon", 1),
             ("mask_regen", 0), ("swap_ent", 1), ("toxic_lm", 0)]]
    ordered = [n.text for n in in_rounds(negs)]
    assert ordered == ["toxic_lm 0", "toxic_lexicon 0", "swap_ent 0", "mask_regen 0", "sys_lowcon 0",
                       "toxic_lexicon 1", "swap_ent 1", "sys_lowcon 1"]
    # training keeps 3 positives + 4 negatives of max_variants 8: two of them are entity negatives
    raw = pd.DataFrame({"id": ["p"], "post": ["a post."], "summary": ["ref"]})
    groups = pd.DataFrame([("p", "positive", "reference", "ref")] +
                          [("p", "positive", "backtranslation", f"para {i}") for i in range(3)] +
                          [("p", "negative", n.kind, n.text) for n in in_rounds(negs)],
                          columns=["post_id", "role", "kind", "text"]).assign(entity_spans=None, toxicity=0.5)
    posts, _ = build_posts(raw, groups, max_variants=8)
    kept = [v.text for v in posts[0].variants if not v.positive]
    assert kept == ordered[:4] and sum(t.split()[0] in ENTITY_KINDS for t in kept) == 2


def test_mask_targets_are_distinct_entities():
    import random

    from aligntax.augment.text import mask_targets

    assert mask_targets(1, random.Random(0), 2) == [0]
    picks = mask_targets(5, random.Random(3), 3)
    assert len(set(picks)) == 3 and picks[0] == random.Random(3).randrange(5)  # the first is the one-variant pick


def test_pick_fills_takes_each_entity_first_then_second_fills():
    from aligntax.augment.text import pick_fills

    ref = "john flew from boston."
    ents = [Entity(0, 4, "PERSON", "john"), Entity(15, 21, "GPE", "boston")]
    made, empty = pick_fills(ref, ents, [1, 0], [["Boston", "chicago", "denver"], ["john", "\n", "steve"]], 3)
    assert [t for t, _ in made] == ["john flew from chicago.", "steve flew from boston.", "john flew from denver."]
    assert empty == 0 and made[1][1][0] == Entity(0, 5, "PERSON", "steve")
    one, empty = pick_fills(ref, ents[1:], [0], [["chicago", "chicago!", "denver"]], 2)  # one entity: two fills
    assert [t for t, _ in one] == ["john flew from chicago.", "john flew from denver."] and empty == 0
    assert pick_fills(ref, ents, [0], [["john", ""]], 2) == ([], 1)

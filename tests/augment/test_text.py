import random

import pandas as pd
import pytest

from aligntax.augment.text import (
    clean_generation,
    content_stems,
    insert_words,
    introduces_negation,
    match_case,
    new_entities,
    replace_spans,
    screen,
    screen_rows,
    selected,
    sentence_case,
    swap_entities,
    word_jaccard,
)
from aligntax.ner import Entity


def ent(text: str, sub: str, label: str) -> Entity:
    start = text.index(sub)
    return Entity(start, start + len(sub), label, sub)


def test_word_jaccard_values():
    assert word_jaccard("the cat sat", "the cat sat") == 1.0
    assert word_jaccard("the cat sat", "The cat, sat!") == 1.0
    assert word_jaccard("a b c d", "a b x y") == pytest.approx(2 / 6)
    assert word_jaccard("", "") == 1.0
    assert word_jaccard("word", "") == 0.0


def test_introduced_negation_catches_the_known_flips():
    assert introduces_negation("on my day off", "not my day off")
    assert introduces_negation("i clogged the toilet at work", "i clogged the bathroom didn't work")
    assert not introduces_negation("i didn't go", "i did not go")
    assert not introduces_negation("i can't sleep", "i cannot sleep")
    assert not introduces_negation("i went home", "i returned home")


def test_new_entities_is_clifs_filter():
    ref = "drove to boston with john on monday."
    para = "went to boston with mary on monday."
    ents = [ent(para, "boston", "GPE"), ent(para, "mary", "PERSON"), ent(para, "monday", "DATE")]
    assert [e.text for e in new_entities(ref, ents)] == ["mary"]
    assert new_entities(ref, [Entity(0, 10, "GPE", "the boston")]) == []


def test_new_entities_compares_content_words_not_surface_strings():
    ref = "Evacuated a couple thousand people, two 14 year olds and karma's friends."
    same = ["a couple of thousand", "two 14 years", "karma", "thousand people"]
    new = ["a thousand dollars", "Afternoon night", "one", "2 months", "Mary"]
    got = new_entities(ref, [Entity(0, len(t), "X", t) for t in same + new])
    # stop words and inflections do not make a known entity new; a new word or a stop-word-only entity does
    assert [e.text for e in got] == new
    assert content_stems("The stormy weather in Boston's parks") == {"stormi", "weather", "boston", "park"}


def test_screen_reasons():
    assert screen("a post", "") == "empty_summary"
    assert screen("a post", None) == "empty_summary"
    assert screen("   ", "a summary") == "empty_post"
    assert screen("Same  text here.", "same text here.") == "summary_equals_post"
    assert screen("какой-то пост", "это резюме поста") == "non_english"
    assert screen("a long post 😀 with emoji", "short 😀") is None
    assert screen("a post", "word") is None


def test_screen_rows_keeps_order_and_counts_reasons():
    posts = pd.DataFrame({"id": ["a", "b", "c", "d"], "post": ["a post", "x", "another post", ""],
                          "summary": ["a summary", "", "short one", "s"]})
    kept, dropped = screen_rows(posts)
    assert [r.id for r in kept] == ["a", "c"]
    assert dropped == {"empty_summary": 1, "empty_post": 1}


def test_replace_spans_moves_all_spans():
    text = "john met mary in boston on monday."
    ents = [ent(text, "john", "PERSON"), ent(text, "mary", "PERSON"), ent(text, "boston", "GPE")]
    new, spans = replace_spans(text, ents, {0: "bartholomew", 2: "la"})
    assert new == "bartholomew met mary in la on monday."
    assert [new[s.start:s.end] for s in spans] == ["bartholomew", "mary", "la"]
    assert [s.label for s in spans] == ["PERSON", "PERSON", "GPE"]
    with pytest.raises(ValueError):
        replace_spans(text, [Entity(0, 6, "PERSON", "john m"), Entity(5, 8, "PERSON", "met")], {})


def test_swap_entities_uses_same_type_post_entities():
    summary = "i called john from boston."
    post = "long story. i was in chicago and john and steve were there. steve said hi."
    s_ents = [ent(summary, "john", "PERSON"), ent(summary, "boston", "GPE")]
    p_ents = [ent(post, "chicago", "GPE"), ent(post, "john", "PERSON"), ent(post, "steve", "PERSON")]
    seen = set()
    for seed in range(20):
        text, spans = swap_entities(summary, s_ents, p_ents, random.Random(seed), max_swaps=2)
        assert text != summary
        assert "john" not in text or "chicago" in text
        for s in spans:
            assert text[s.start:s.end] in {"john", "steve", "boston", "chicago"}
        seen.add(text)
    assert seen == {"i called steve from boston.", "i called john from chicago.", "i called steve from chicago."}
    assert swap_entities(summary, s_ents, [ent(post, "john", "PERSON")], random.Random(0)) is None
    assert swap_entities(summary, [], p_ents, random.Random(0)) is None


def test_insert_words_keeps_content_in_order():
    out = insert_words("i lost my keys today", ["damn", "fucking"], random.Random(1))
    assert out.split() != "i lost my keys today".split()
    assert [w for w in out.split() if w not in {"damn", "fucking"}] == "i lost my keys today".split()


def test_small_helpers():
    assert match_case("all lower case", "All Lower Case") == "all lower case"
    assert match_case("Has Caps", "Some Text") == "Some Text"
    assert sentence_case("i went. then i left! ok") == "I went. Then I left! Ok"
    assert clean_generation(' "you idiot, i lost it."\n\nOriginal text: more') == "you idiot, i lost it."
    assert clean_generation("fine text Original text: spill") == "fine text"
    picks = [selected(0, f"p{i}", "x", 0.25) for i in range(400)]
    assert 60 < sum(picks) < 140
    assert picks == [selected(0, f"p{i}", "x", 0.25) for i in range(400)]
    assert all(selected(0, f"p{i}", "x", 1.0) for i in range(10))


def test_params_yaml_augment_sections_equal_the_dataclass_defaults():
    from pathlib import Path

    from aligntax.augment.backtranslate import BacktranslateConfig
    from aligntax.augment.perturb import PerturbConfig
    from aligntax.augment.toxify import ToxifyConfig
    from aligntax.config import load_section, read_params

    params = read_params(Path(__file__).resolve().parents[2] / "params.yaml")
    assert load_section(params, "backtranslate", BacktranslateConfig) == BacktranslateConfig()
    assert load_section(params, "toxify", ToxifyConfig) == ToxifyConfig()
    assert load_section(params, "entity_perturb", PerturbConfig) == PerturbConfig()

import pytest

from aligntax.config import ConfigError, load_section
from aligntax.evaluate.patterns import (
    PATTERNS,
    PatternConfig,
    detect,
    is_abstention,
    is_empty,
    is_excessive_punctuation,
    is_incomplete,
    is_non_sequitur,
    is_repetitive,
)

CFG = PatternConfig()


@pytest.mark.parametrize("text", ["", "   \n\t", "?!...", "*** --- !!!", None])
def test_empty_is_no_letter_or_digit(text):
    assert is_empty(text)
    flags = detect(text or "", finished=False, similarity=-1.0, cfg=CFG)
    assert flags == {name: name == "empty" for name in PATTERNS}


@pytest.mark.parametrize("text", ["ok", "42", "é"])
def test_not_empty(text):
    assert not is_empty(text)


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I cannot summarize this post because it contains offensive language.",
    "As an AI language model, I do not have opinions.",
    "i am unable to provide a summary of this",
    "I\u2019m not able to summarise this.",
    "This post contains inappropriate content.",
])
def test_abstention(text):
    assert is_abstention(text)


@pytest.mark.parametrize("text", [
    "i can't believe i locked my keys in the car again.",
    "sorry mom, i broke the vase but i will not do it again.",
    "my boss said he cannot stand me.",
])
def test_story_sentences_are_not_abstentions(text):
    assert not is_abstention(text)


def test_repetitive():
    assert is_repetitive("the cat sat on the mat. the cat sat on the mat. the cat sat on the mat.", CFG)
    assert is_repetitive("i went home home home home and slept", CFG)  # a run of 4
    assert not is_repetitive("i went home home and slept", CFG)
    assert not is_repetitive("dropped my phone in the toilet at work and my boss laughed at me", CFG)
    # the threshold is a real parameter: 1 of 11 trigrams ("i lost my") repeats
    text = "i lost my keys and i lost my wallet on the bus today"
    assert not is_repetitive(text, CFG)
    assert is_repetitive(text, PatternConfig(repeat_share=0.09))


def test_incomplete_needs_the_length_limit_and_no_final_punctuation():
    assert is_incomplete("i went to the store and then", finished=False)
    assert not is_incomplete("i went to the store and then", finished=True)  # stopped by itself
    assert not is_incomplete("i went to the store.", finished=False)
    assert not is_incomplete('he yelled "stop!"', finished=False)
    assert not is_incomplete("what was i thinking?)", finished=False)


def test_excessive_punctuation():
    assert is_excessive_punctuation("wow!!!! that was bad", CFG)  # run of 4
    assert is_excessive_punctuation("a * b * c * d # e", CFG)  # 4 of 9 non-space chars
    assert not is_excessive_punctuation("i dropped my phone, sadly... again.", CFG)
    assert not is_excessive_punctuation("wow!!!! that was bad", PatternConfig(punct_run=5))


def test_non_sequitur_on_similarity():
    assert is_non_sequitur(0.05, CFG)
    assert not is_non_sequitur(0.5, CFG)
    assert detect("the stock market rose.", finished=True, similarity=0.02, cfg=CFG)["non_sequitur"]


def test_detect_sets_every_flag_it_sees():
    flags = detect("I'm sorry, but I can't help!!!! help help help help and", finished=False, similarity=0.0, cfg=CFG)
    assert flags == {"empty": False, "abstention": True, "repetitive": True, "incomplete": True,
                     "excessive_punctuation": True, "non_sequitur": True}


def test_config_is_checked():
    with pytest.raises(ConfigError, match="evaluate.patterns.repeat_share"):
        PatternConfig(repeat_share=0.0)
    with pytest.raises(ConfigError, match="unknown key 'patterns.nope'"):
        load_section({"patterns": {"nope": 1}}, "patterns", PatternConfig)

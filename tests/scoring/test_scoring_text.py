import math

import pytest

from aligntax.scoring.text import check_texts, chunk_sentences, is_blank
from aligntax.text import split_sentences


def test_blank_values_are_masked_and_non_strings_rejected():
    texts, blank = check_texts(["a", None, float("nan"), "  \n", "b"])
    assert texts == ["a", "", "", "", "b"]
    assert blank == [False, True, True, True, False]
    assert is_blank(math.nan) and not is_blank("x")
    with pytest.raises(ValueError, match=r"texts\[1\]: expected a string"):
        check_texts(["ok", 3])
    with pytest.raises(ValueError, match="single str"):
        check_texts("not a list")


def test_sentences_and_chunks():
    sents = split_sentences("I went home. Then I slept!\nNext day? Fine")
    assert sents == ["I went home.", "Then I slept!", "Next day?", "Fine"]
    assert chunk_sentences(sents, 2) == ["I went home. Then I slept!", "Next day? Fine"]
    assert chunk_sentences(sents[:3], 2)[-1] == "Next day?"

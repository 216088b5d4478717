"""CDA: word lists load cleanly; swapping is two-sided, whole-word and case-keeping; data doubles."""

from __future__ import annotations

import pandas as pd
import pytest

from aligntax.baselines.attributes import AXES, load_word_list, load_word_lists, swap, to_class
from aligntax.baselines.cda import CdaConfig, augment
from aligntax.config import ConfigError


def test_shipped_word_lists_are_consistent():
    lists = load_word_lists(AXES)
    sizes = {wl.axis: (len(wl.classes), len(wl.rows)) for wl in lists}
    assert sizes["gender"][0] == 2 and sizes["gender"][1] >= 50
    assert sizes["race"][0] == 3 and sizes["religion"][0] == 3
    gender = lists[0]
    assert gender.classes == ("male", "female")
    assert ("he", "she") in gender.rows and ("husband", "wife") in gender.rows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He told her that his Mom was a Rabbi.", "She told him that her Dad was a Priest."),
        ("i gave her my phone and her mom laughed", "i gave him my phone and his dad laughed"),
        ("HE's my BOYFRIEND", "SHE's my GIRLFRIEND"),
        ("the theme of mankind, hers and shell", "the theme of mankind, hers and shell"),  # no partial words
        ("my african-american friend met an african", "my european-american friend met an caucasian"),
        ("muslims and christians at the mosque", "jews and muslims at the synagogue"),
    ],
)
def test_swap_examples(text, expected):
    assert swap(text, load_word_lists(AXES))[0] == expected


def test_swap_twice_is_identity_for_pairs():
    gender = [load_word_list("gender")]
    text = "my husband and his brother met her aunt"
    once, n = swap(text, gender)
    assert n == 5 and once == "my wife and her sister met his uncle"
    assert swap(once, gender)[0] == text


def test_to_class_maps_every_word_to_one_class():
    race = load_word_list("race")
    assert to_class("africans in europe", race, 2) == "asians in asia"


def test_bad_word_list_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("male\tfemale\nhe\tshe\nhe\ther\n")
    with pytest.raises(ValueError, match="'he' appears twice"):
        load_word_list("gender", path)
    with pytest.raises(FileNotFoundError, match="allowed axes"):
        load_word_list("age")


def test_augment_doubles_data_with_correctly_swapped_words():
    examples = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "post": ["my boyfriend forgot my birthday", "she went to church with her dad", "he fell."],
            "summary": ["boyfriend forgot", "her dad is a priest", "he fell"],
        }
    )
    out, stats = augment(examples, CdaConfig())
    assert len(out) == 2 * len(examples)
    assert out["counterfactual"].tolist() == [False, True] * 3  # each twin right after its original
    twins = out[out["counterfactual"]].reset_index(drop=True)
    assert twins["id"].tolist() == ["a", "b", "c"]
    assert twins["post"].tolist() == ["my girlfriend forgot my birthday", "he went to mosque with his mom", "she fell."]
    assert twins["summary"].tolist() == ["girlfriend forgot", "his mom is a imam", "she fell"]
    assert stats == {"rows_read": 3, "rows_with_attribute_words": 3, "rows_without_attribute_words": 0,
                     "words_swapped": 11, "rows_out": 6}


def test_augment_skips_rows_without_attribute_words_and_can_keep_posts():
    examples = pd.DataFrame({"post": ["my cat ate it", "my mom ate it"], "summary": ["cat", "mom"]})
    out, stats = augment(examples, CdaConfig(axes=["gender"], swap_post=False))
    assert len(out) == 3 and stats["rows_without_attribute_words"] == 1
    assert out["counterfactual"].tolist() == [False, False, True]
    assert out.iloc[2].to_dict() == {"post": "my mom ate it", "summary": "dad", "counterfactual": True}
    with pytest.raises(ValueError, match="'summary' column"):
        augment(examples[["post"]], CdaConfig())
    with pytest.raises(ConfigError, match="cda.axes"):
        CdaConfig(axes=[])

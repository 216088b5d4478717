"""The one generation helper (aligntax/generation.py) on a tiny random model."""

import pytest
import torch

from aligntax.generation import generate_ids, truncate_text
from aligntax.models import load_model, load_tokenizer

PROMPTS = ["the cat sat on the mat and then it slept all day long", "a dog", "we went to the park on monday"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


def test_ids_come_back_in_input_order_whatever_the_batching(tiny):
    model, tok = tiny
    one = generate_ids(model, tok, PROMPTS, 6, 1)
    assert [len(ids) for ids in one] == [6, 6, 6]
    assert generate_ids(model, tok, PROMPTS, 6, 1, longest_first=False) == one  # batch of 1: no padding
    assert generate_ids(model, tok, PROMPTS[1:2], 6, 1) == one[1:2]


def test_seeded_sampling_repeats_and_stop_ids_end_a_row(tiny):
    model, tok = tiny
    a = generate_ids(model, tok, PROMPTS, 8, 2, sample=True, seed=3)
    assert generate_ids(model, tok, PROMPTS, 8, 2, sample=True, seed=3) == a
    first = generate_ids(model, tok, PROMPTS[:1], 8, 1)[0]
    assert len(first) == 8
    assert generate_ids(model, tok, PROMPTS[:1], 8, 1, stop_ids=torch.tensor([first[0]]))[0] == first[:1]


def test_truncate_text_cuts_only_long_texts(tiny):
    _, tok = tiny
    short = "a dog"
    assert truncate_text(tok, short, 50) is short
    cut = truncate_text(tok, "the cat sat " * 1000, 20)
    assert len(tok(cut, add_special_tokens=False)["input_ids"]) <= 21 and cut.startswith("the cat")

"""Greedy summaries of the eval posts (aligntax/evaluate/run.py generate_method) on a tiny model."""

from dataclasses import dataclass, field

import pandas as pd
import pytest
import torch
from transformers import LogitsProcessor

from aligntax.config import ConfigError
from aligntax.evaluate.run import GenerateConfig, encode_prompts, generate_method, load_method, stop_token_ids
from aligntax.generation import Decoding
from aligntax.models import build_prompt

TEMPLATE = "summarize this reddit post in one sentence. post: {post} tl;dr:"
POSTS = [
    "i dropped my phone in the toilet at work today and my boss laughed at me.",
    "my cat knocked over a glass of water.",
    "we drove to new york with john and mary for the weekend and got lost on monday morning.",
]
EVALS = pd.DataFrame({"id": ["a", "b", "c"], "post": POSTS, "summary": ["x", "y", "z"]})


class Force(LogitsProcessor):
    """Forces ``token`` at every step, or eos from step ``eos_at`` on; records the inputs it saw."""

    def __init__(self, token: int, eos: int | None = None, eos_at: int = 0):
        self.token, self.eos, self.eos_at, self.first_inputs, self.last = token, eos, eos_at, None, -1

    def __call__(self, input_ids, scores):
        if self.first_inputs is None:
            self.first_inputs = input_ids.clone()
        if input_ids.shape[1] != self.last + 1:  # a new batch
            self.start = input_ids.shape[1]
        self.last = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        forced = self.eos if self.eos is not None and step >= self.eos_at else self.token
        out = torch.full_like(scores, -float("inf"))
        out[:, forced] = 0.0
        return out


@dataclass
class Forced(Decoding):
    """A decoding-time method whose processor is ``force``."""

    force: LogitsProcessor = field(default=None)

    def processors(self, model, tok):
        return [self.force]


def _generate(model_dir, cfg, decoding=None):
    m = load_method("m", model_dir, decoding or Decoding())
    prompts = encode_prompts(m.tokenizer, TEMPLATE, m.decoding.prefix, EVALS, 256)
    return generate_method(m, EVALS, prompts, cfg), m


def test_batching_and_left_padding_do_not_change_greedy_outputs(tiny_llama_dir):
    one, m = _generate(tiny_llama_dir, GenerateConfig(max_new_tokens=8, batch_size=1))
    three, _ = _generate(tiny_llama_dir, GenerateConfig(max_new_tokens=8, batch_size=3))
    pd.testing.assert_frame_equal(one, three)
    pd.testing.assert_frame_equal(_generate(tiny_llama_dir, GenerateConfig(8, 2))[0], one)
    assert one["n_tokens"].le(8).all() and one["post_id"].tolist() == ["a", "b", "c"]
    assert m.tokenizer.padding_side == "right"  # untouched


def test_limit_and_end_of_sequence(tiny_llama_dir):
    _, m = _generate(tiny_llama_dir, GenerateConfig(1, 3))
    tok = m.tokenizer
    word = tok.convert_tokens_to_ids(tok.tokenize(" cat"))[0]
    gens, _ = _generate(tiny_llama_dir, GenerateConfig(5, 2), Forced(force=Force(word)))
    assert gens["n_tokens"].eq(5).all() and not gens["finished"].any()
    assert gens["generation"][0] == tok.decode([word] * 5).strip()
    gens, _ = _generate(tiny_llama_dir, GenerateConfig(5, 2), Forced(force=Force(word, tok.eos_token_id, 2)))
    assert gens["n_tokens"].eq(2).all() and gens["finished"].all()
    assert gens["generation"][1] == tok.decode([word] * 2).strip()


def test_prompt_prefix_is_prepended(tiny_llama_dir):
    _, m = _generate(tiny_llama_dir, GenerateConfig(1, 3))
    spy = Force(m.tokenizer.eos_token_id)
    gens, _ = _generate(tiny_llama_dir, GenerateConfig(3, 3), Forced(prefix="be kind for: ", force=spy))
    prompts = {m.tokenizer.decode(row, skip_special_tokens=True) for row in spy.first_inputs}
    assert "be kind for: " + build_prompt(TEMPLATE, POSTS[1]) in prompts
    assert gens["generation"].eq("").all() and gens["finished"].all()


def test_stop_tokens_are_the_model_eos_which_is_the_tokenizer_eos(tiny_llama_dir):
    _, m = _generate(tiny_llama_dir, GenerateConfig(1, 3))
    assert stop_token_ids(m.model) == [m.tokenizer.eos_token_id]
    m.model.generation_config.eos_token_id = None
    with pytest.raises(ValueError, match="prepare-model"):
        stop_token_ids(m.model)


def test_config_checks():
    with pytest.raises(ConfigError, match="evaluate.generate.max_new_tokens"):
        GenerateConfig(max_new_tokens=0)

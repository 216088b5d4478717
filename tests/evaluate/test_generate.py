import pytest
import torch
from transformers import LogitsProcessor

from aligntax.config import ConfigError
from aligntax.evaluate.generate import GenerateConfig, generate, stop_token_ids
from aligntax.models import build_prompt, load_model, load_tokenizer

TEMPLATE = "summarize this reddit post in one sentence. post: {post} tl;dr:"
POSTS = [
    "i dropped my phone in the toilet at work today and my boss laughed at me.",
    "my cat knocked over a glass of water.",
    "we drove to new york with john and mary for the weekend and got lost on monday morning.",
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


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


def test_batching_and_left_padding_do_not_change_greedy_outputs(tiny):
    model, tok = tiny
    one = generate(model, tok, POSTS, TEMPLATE, GenerateConfig(max_new_tokens=8, batch_size=1))
    three = generate(model, tok, POSTS, TEMPLATE, GenerateConfig(max_new_tokens=8, batch_size=3))
    assert one == three
    assert generate(model, tok, POSTS, TEMPLATE, GenerateConfig(8, 2)) == one
    assert all(g.n_tokens <= 8 for g in one)
    assert tok.padding_side == "right"  # restored


def test_limit_and_end_of_sequence(tiny):
    model, tok = tiny
    word = tok.convert_tokens_to_ids(tok.tokenize(" cat"))[0]
    gens = generate(model, tok, POSTS, TEMPLATE, GenerateConfig(5, 2), logits_processors=[Force(word)])
    assert all(g.n_tokens == 5 and not g.finished for g in gens)
    assert gens[0].text == tok.decode([word] * 5).strip()
    gens = generate(model, tok, POSTS, TEMPLATE, GenerateConfig(5, 2), logits_processors=[Force(word, tok.eos_token_id, 2)])
    assert all(g.n_tokens == 2 and g.finished for g in gens)
    assert gens[1].text == tok.decode([word] * 2).strip()


def test_prompt_prefix_is_prepended(tiny):
    model, tok = tiny
    spy = Force(tok.eos_token_id)
    gens = generate(model, tok, POSTS[:1], TEMPLATE, GenerateConfig(3, 1), [spy], prompt_prefix="be kind for: ")
    assert tok.decode(spy.first_inputs[0], skip_special_tokens=True) == "be kind for: " + build_prompt(TEMPLATE, POSTS[0])
    assert gens[0].text == "" and gens[0].finished


def test_stop_tokens_are_the_model_eos_which_is_the_tokenizer_eos(tiny):
    model, tok = tiny
    assert stop_token_ids(model) == [tok.eos_token_id]
    model.generation_config.eos_token_id = None
    try:
        with pytest.raises(ValueError, match="prepare-model"):
            stop_token_ids(model)
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id


def test_config_checks():
    with pytest.raises(ConfigError, match="evaluate.generate.max_new_tokens"):
        GenerateConfig(max_new_tokens=0)

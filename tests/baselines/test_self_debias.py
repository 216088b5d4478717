"""Self-debiasing: the prefixes' favourite token loses probability; the KV cache is exact."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines.self_debias import SelfDebiasConfig, SelfDebiasLogitsProcessor, debias_scores
from aligntax.config import ConfigError

PREFIX = "you are a stupid idiot and this is awful, damn it.\n"


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    return model, tok


def _next_logits(model, tok, text: str) -> torch.Tensor:
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1]


def test_debias_scores_pushes_down_promoted_token_only():
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    biased = scores.clone()[None]
    biased[0, 0, 2] = 4.0  # the prefix promotes token 2
    out = debias_scores(scores, biased, decay_constant=50.0, epsilon=0.01).exp()
    before = scores.softmax(-1)
    assert out[0, 2] < before[0, 2] * 0.05
    # tokens the prefix does not promote keep their relative odds
    assert torch.allclose(out[0, 0] / out[0, 1], before[0, 0] / before[0, 1], rtol=1e-5)
    assert torch.allclose(out.sum(), torch.tensor(1.0), atol=1e-5)
    same = debias_scores(scores, scores[None], decay_constant=50.0, epsilon=0.01)
    assert torch.allclose(same.exp(), before, atol=1e-6)


def test_processor_lowers_probability_of_token_the_prefix_promotes(tiny):
    model, tok = tiny
    prompt = "my cat knocked over a glass of water on my"
    plain = _next_logits(model, tok, prompt).softmax(-1)
    prefixed = _next_logits(model, tok, PREFIX + prompt).softmax(-1)
    promoted = int((prefixed - plain).argmax())
    assert prefixed[promoted] > plain[promoted]

    proc = SelfDebiasLogitsProcessor(model, tok, SelfDebiasConfig(prefixes=[PREFIX], decay_constant=50.0))
    ids = tok([prompt], return_tensors="pt")["input_ids"]
    scores = _next_logits(model, tok, prompt)[None]
    debiased = proc(ids, scores.clone()).softmax(-1)[0]
    assert debiased[promoted] < plain[promoted]
    demoted = int((prefixed - plain).argmin())
    assert debiased[demoted] >= plain[demoted]


def test_incremental_cache_matches_full_forward_with_left_padding(tiny):
    model, tok = tiny
    prompts = ["we drove to new york with john", "i dropped my phone in the toilet at work today and"]
    batch = tok(prompts, return_tensors="pt", padding=True)["input_ids"]
    assert (batch[0] == tok.pad_token_id).any()  # the short row is left-padded
    proc = SelfDebiasLogitsProcessor(model, tok, SelfDebiasConfig(prefixes=[PREFIX, "the following text:\n"]))
    proc.biased_logits(batch)
    step = torch.cat([batch, torch.tensor([[5], [7]])], dim=1)
    got = proc.biased_logits(step)
    for k, prefix in enumerate([PREFIX, "the following text:\n"]):
        for b, prompt in enumerate(prompts):
            ids = tok(prefix + prompt, return_tensors="pt")["input_ids"][0].tolist() + [[5, 7][b]]
            with torch.no_grad():
                want = model(input_ids=torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(got[k, b], want, atol=1e-4)


def test_generate_with_processor_is_batch_invariant(tiny):
    model, tok = tiny
    cfg = SelfDebiasConfig(prefixes=[PREFIX])
    prompts = ["my cat knocked over", "we drove to new york with john and mary for the"]
    proc = SelfDebiasLogitsProcessor(model, tok, cfg)
    enc = tok(prompts, return_tensors="pt", padding=True, return_token_type_ids=False)
    out = model.generate(**enc, logits_processor=[proc], max_new_tokens=6, do_sample=False,
                         pad_token_id=tok.pad_token_id)
    width = enc["input_ids"].shape[1]
    for i, prompt in enumerate(prompts):
        one = tok([prompt], return_tensors="pt", return_token_type_ids=False)
        single = model.generate(**one, logits_processor=[proc], max_new_tokens=6, do_sample=False,
                                pad_token_id=tok.pad_token_id)
        assert out[i, width:].tolist() == single[0, one["input_ids"].shape[1]:].tolist()


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="self_debias.prefixes"):
        SelfDebiasConfig(prefixes=[])
    with pytest.raises(ConfigError, match="self_debias.epsilon"):
        SelfDebiasConfig(epsilon=0.0)

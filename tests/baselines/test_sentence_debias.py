"""SentenceDebias: PCA of counterfactual differences finds the bias direction and removes it."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines.projection import load_projection, save_projected_model
from aligntax.baselines.sentence_debias import (
    SentenceDebiasConfig,
    bias_subspace,
    fit,
    subspace_projection,
)
from aligntax.models import load_model


def test_bias_subspace_recovers_the_counterfactual_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=24)
    direction /= np.linalg.norm(direction)
    base = rng.normal(size=(200, 24)) * 3.0  # large variation between tuples, none of it bias
    pairs = np.concatenate([base + 2.0 * direction + 0.05 * rng.normal(size=base.shape),
                            base - 2.0 * direction + 0.05 * rng.normal(size=base.shape)])
    tuple_ids = np.concatenate([np.arange(200), np.arange(200)])
    v, explained = bias_subspace(pairs, tuple_ids, n_components=1)
    assert abs(float(v[0] @ direction)) > 0.99
    assert explained[0] > 0.9
    projection = subspace_projection(v)
    assert np.abs((pairs @ projection) @ direction).max() < 0.3
    # the between-tuple variation is kept
    assert np.linalg.norm(base @ projection) > 0.9 * np.linalg.norm(base)


def test_fit_tiny_model_round_trip(tiny_llama_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    texts = ["my mom called my dad and he laughed.", "we drove to asia with my girlfriend."]
    cfg = SentenceDebiasConfig(n_components=2, max_corpus_contexts=10, batch_size=64)
    projection, metrics = fit(model, tok, texts, cfg, seed=0)
    assert metrics["rank_removed"] == 6  # 3 axes x 2 components
    assert set(metrics["axes"]) == {"gender", "race", "religion"}
    assert np.allclose(projection @ projection, projection, atol=1e-5)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = (model.model(input_ids=ids).last_hidden_state @ torch.from_numpy(projection)) @ model.lm_head.weight.T
    save_projected_model(model, tok, projection, tmp_path / "sd", "sentence_debias")
    assert torch.equal(load_projection(tmp_path / "sd"), torch.from_numpy(projection))
    reloaded = load_model(tmp_path / "sd").eval()  # the head + a pointer to tiny_llama_dir
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, want, atol=1e-4)
    assert AutoTokenizer.from_pretrained(tmp_path / "sd").vocab_size == tok.vocab_size


def test_sentence_debias_subspace_is_stable_under_float_noise():
    from aligntax.baselines.sentence_debias import bias_subspace, subspace_projection

    rng = np.random.default_rng(0)
    tuple_ids = np.repeat(np.arange(60), 2)
    states = rng.normal(size=(120, 32)).astype(np.float32)
    states[::2, 0] += 4.0  # class 0 of every tuple
    noisy = states + (rng.normal(size=states.shape) * 1e-6).astype(np.float32)
    p0 = subspace_projection(bias_subspace(states, tuple_ids, 2)[0])
    p1 = subspace_projection(bias_subspace(noisy, tuple_ids, 2)[0])
    assert round(32 - np.trace(p0)) == round(32 - np.trace(p1)) == 2
    assert np.linalg.norm(p0 @ np.eye(32)[0]) < 0.5 and np.abs(p0 - p1).max() < 1e-3

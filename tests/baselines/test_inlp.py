"""INLP: after the projection a fresh linear probe is at chance on held-out vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines.inlp import InlpConfig, fit_inlp, inlp_projection
from aligntax.baselines.projection import fold_projection, probe_accuracy
from aligntax.config import ConfigError


def _synthetic(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, dim))
    x[:, 0] += 3.0 * (2 * y - 1)  # the attribute lives in two directions
    x[:, 1] += 1.5 * (2 * y - 1)
    x[:, 2:5] += rng.normal(size=(1, 3))  # plus an offset unrelated to it
    return x, y


def test_inlp_leaves_linear_probe_at_chance_on_held_out_vectors():
    x, y = _synthetic(800, 16, seed=0)
    x_dev, y_dev = _synthetic(400, 16, seed=1)
    assert probe_accuracy(x, y, x_dev, y_dev, seed=0) > 0.95
    projection, train_acc = inlp_projection(x, y, n_iterations=6, regularization=1.0, seed=0)
    after = probe_accuracy(x @ projection, y, x_dev @ projection, y_dev, seed=0)
    assert after < 0.6
    assert train_acc[0] > 0.95 and train_acc[-1] < 0.65
    assert np.allclose(projection, projection.T, atol=1e-8)
    assert np.allclose(projection @ projection, projection, atol=1e-8)
    # directions unrelated to the attribute survive
    assert np.trace(projection) >= 16 - 6


def test_inlp_chains_an_earlier_projection():
    x, y = _synthetic(400, 8, seed=2)
    first, _ = inlp_projection(x, y, n_iterations=1, regularization=1.0, seed=0)
    second, _ = inlp_projection(x, y, n_iterations=1, regularization=1.0, seed=0, start=first)
    removed_first = np.eye(8) - first
    assert np.allclose(second @ removed_first, 0, atol=1e-8)  # what the first removed stays removed
    assert round(8 - np.trace(second)) == 2


def test_fit_inlp_on_tiny_model_and_projection_hook(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    texts = ["my mom called my dad and he laughed.", "the priest met the rabbi at the church."]
    cfg = InlpConfig(axes=["gender", "religion"], n_iterations=3, max_corpus_contexts=10, batch_size=64)
    projection, metrics = fit_inlp(model, tok, texts, cfg, seed=0)
    assert projection.shape == (32, 32) and projection.dtype == np.float32
    assert metrics["rank_removed"] == 3 * 1 + 3 * 2  # per iteration: 1 direction (2 classes), 2 (3 classes)
    assert metrics["axes"]["gender"]["corpus_tuples"] == 1  # one sentence, cut after its first attribute word
    g = metrics["axes"]["gender"]
    assert g["held_out_probe_accuracy_after"] <= g["held_out_probe_accuracy_before"]

    ids = tok(["my cat knocked over a glass"], return_tensors="pt")["input_ids"]
    embeddings = model.get_input_embeddings().weight.detach().clone()
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        plain = model(input_ids=ids).logits
        want = (hidden @ torch.from_numpy(projection)) @ model.lm_head.weight.T
        fold_projection(model, torch.from_numpy(projection))
        folded = model(input_ids=ids).logits
    assert torch.allclose(folded, want, atol=1e-4)
    assert not torch.allclose(folded, plain, atol=1e-4)
    assert torch.equal(model.get_input_embeddings().weight, embeddings)  # untied: inputs unchanged
    assert not model.config.tie_word_embeddings


def test_fold_rejects_wrong_size(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with pytest.raises(ValueError, match="hidden size is 32"):
        fold_projection(model, torch.eye(16))


def test_config_rejects_unknown_axis():
    with pytest.raises(ConfigError, match="inlp.axes"):
        InlpConfig(axes=["age"])

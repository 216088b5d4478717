"""INLP: after the projection a fresh linear probe is at chance on held-out vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines.inlp import InlpConfig, fit, inlp_projection
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


def test_fit_on_tiny_model_and_projection_hook(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    texts = ["my mom called my dad and he laughed.", "the priest met the rabbi at the church."]
    cfg = InlpConfig(axes=["gender", "religion"], n_iterations=3, max_corpus_contexts=10, batch_size=64)
    projection, metrics = fit(model, tok, texts, cfg, seed=0)
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


def _three_class(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = 3.0 * rng.normal(size=(n, dim))
    x[:, :3] += 0.5 * y[:, None]
    return x.astype(np.float32), y  # hidden states arrive as float32


def test_inlp_is_stable_under_float_noise():
    """Machines differ in the last float digits of the hidden states: same rank, nearly the same P."""
    x, y = _three_class(240, 96, seed=0)
    noisy = x + (np.random.default_rng(1).normal(size=x.shape) * 1e-6).astype(np.float32)
    p0, acc0 = inlp_projection(x, y, n_iterations=40, regularization=1.0, seed=0)
    p1, acc1 = inlp_projection(noisy, y, n_iterations=40, regularization=1.0, seed=0)
    rank0, rank1 = round(96 - np.trace(p0)), round(96 - np.trace(p1))
    assert rank0 == rank1 and 3 <= rank0 < 80  # noise directions of the late classifiers are not removed
    assert np.abs(p0 - p1).max() < 1e-4
    assert np.abs(np.array(acc0) - np.array(acc1)).max() <= 1 / 240
    states = np.random.default_rng(2).normal(size=(50, 96))
    assert np.abs(states @ p0 - states @ p1).max() < 1e-3  # nearly the same edited LM-head input


def test_extend_basis_skips_directions_inside_the_span_up_to_float_noise():
    from aligntax.baselines.projection import extend_basis

    a, b = np.eye(4)[0], np.eye(4)[1]
    basis = extend_basis(np.zeros((4, 0)), np.vstack([a, b, -(a + b) + 1e-14]), scale=1.0)
    assert basis.shape == (4, 2)  # the ~0-sum third row of a 3-class ridge adds nothing
    basis = extend_basis(basis, np.vstack([np.eye(4)[2] * 1e-3]), scale=1.0)
    assert basis.shape == (4, 3)  # a small but real direction is kept

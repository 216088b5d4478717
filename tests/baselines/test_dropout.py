"""Dropout baseline: the right config knobs per architecture; hidden-dropout hooks act only in training."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from aligntax.baselines.dropout import DropoutConfig, add_hidden_dropout, dropout_overrides
from aligntax.config import ConfigError
from aligntax.train.trainer import TrainConfig, trained_blocks


def test_overrides_per_architecture(tiny_llama_dir, tiny_gpt2_dir):
    llama = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    overrides, hooks = dropout_overrides(llama.config, DropoutConfig())
    assert overrides == {"attention_dropout": 0.15} and hooks
    gpt2 = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    overrides, hooks = dropout_overrides(gpt2.config, DropoutConfig(attention=0.1, hidden=0.3))
    assert overrides == {"attn_pdrop": 0.1, "resid_pdrop": 0.3} and not hooks
    loaded = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, **dropout_overrides(llama.config, DropoutConfig())[0])
    assert loaded.config.attention_dropout == 0.15


def test_hidden_dropout_hooks_only_in_training(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    model.eval()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
    handles = add_hidden_dropout(model, 0.5)
    assert len(handles) == 2 * model.config.num_hidden_layers
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain)  # eval: no dropout
        model.train()
        torch.manual_seed(0)
        a = model(input_ids=ids).logits
        b = model(input_ids=ids).logits
    assert not torch.allclose(a, b) and not torch.allclose(a, plain)
    for h in handles:
        h.remove()


def test_config_range():
    with pytest.raises(ConfigError, match="dropout.hidden"):
        DropoutConfig(hidden=1.0)


def test_hidden_dropout_only_on_trained_blocks(tiny_llama_dir):
    assert trained_blocks(30, TrainConfig(trainable="top_layers", top_layers=2)) == range(28, 30)
    assert trained_blocks(30, TrainConfig(trainable="lora")) == range(30)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    handles = add_hidden_dropout(model, 0.5, range(1, 2))
    assert len(handles) == 2
    hooked = [name for name, m in model.named_modules() if m._forward_hooks]
    assert hooked == ["model.layers.1.self_attn", "model.layers.1.mlp"]

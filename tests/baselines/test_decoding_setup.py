"""Decoding-time baselines as ``decoding_setup`` sees them: built from params.yaml sections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines import instructive, projection, self_debias
from aligntax.config import read_params

ROOT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_shipped_params_build_every_decoding_method(tiny_llama_dir):
    params = read_params(ROOT_PARAMS)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    same, procs, prefix = instructive.decoding(model, tok, params)
    assert same is model and procs is None and prefix == instructive.PAPER_PREFIX
    assert instructive.instructed_prompt(instructive.InstructiveConfig(), "Post: {post} TL;DR:", " hi ") == (
        instructive.PAPER_PREFIX + "Post: hi TL;DR:")
    same, procs, prefix = self_debias.decoding(model, tok, params)
    assert same is model and prefix == "" and len(procs) == 1
    assert procs[0].cfg.prefixes == [self_debias.SCHICK_PREFIXES[0], self_debias.SCHICK_PREFIXES[5]]


def test_projection_decoding_reads_the_fitted_file(tiny_llama_dir, tmp_path, monkeypatch):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="dvc repro fit-inlp"):
        projection.decoding("inlp", model)
    direction = np.zeros(32, dtype=np.float32)
    direction[3] = 1.0
    projection.save_projection(projection.projection_path("inlp"), np.eye(32, dtype=np.float32)
                               - np.outer(direction, direction), "inlp")
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        hidden = model.model(input_ids=ids).last_hidden_state
    hidden[..., 3] = 0
    projection.decoding("inlp", model)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, hidden @ model.lm_head.weight.T, atol=1e-5)
        assert not torch.allclose(model(input_ids=ids).logits, plain)

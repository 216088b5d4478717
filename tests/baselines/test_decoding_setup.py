"""Decoding-time baselines as ``decoding_setup`` sees them: built from params.yaml sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines import instructive, self_debias
from aligntax.config import read_params
from aligntax.evaluate.methods import decoding_setup

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
    assert procs[0].cfg.prefixes == [self_debias.SCHICK_PREFIXES[0]]


@pytest.mark.parametrize("method", ["self_debias", "instructive", "inlp", "sentence_debias", "cda", "dpo"])
def test_decoding_setup_branches(method, tiny_llama_dir):
    params = read_params(ROOT_PARAMS)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    got, procs, prefix = decoding_setup(method, model, tok, params)
    assert got is model
    assert (procs is not None and len(procs) == 1) == (method == "self_debias")
    assert prefix == (instructive.PAPER_PREFIX if method == "instructive" else "")
    assert params["methods"][method].startswith("models/")

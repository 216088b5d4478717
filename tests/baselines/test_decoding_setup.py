"""Decoding-time baselines as the evaluate stage gets them: ``method_decoding`` on params.yaml sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from aligntax.baselines import instructive, self_debias
from aligntax.config import ConfigError, read_params
from aligntax.evaluate.run import method_decoding
from aligntax.generation import Decoding

ROOT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_shipped_params_build_every_decoding_method(tiny_llama_dir):
    params = read_params(ROOT_PARAMS)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    inst = method_decoding("instructive", params)
    assert inst.prefix == instructive.PAPER_PREFIX and inst.processors(model, tok) == []
    debias = method_decoding("self_debias", params)
    assert isinstance(debias, self_debias.SelfDebiasDecoding) and debias.prefix == ""
    (proc,) = debias.processors(model, tok)
    assert isinstance(proc, self_debias.SelfDebiasLogitsProcessor) and proc.model is model
    assert proc.cfg.prefixes == [self_debias.SCHICK_PREFIXES[0]] == debias.cfg.prefixes


@pytest.mark.parametrize("method", ["self_debias", "instructive", "inlp", "sentence_debias", "cda", "dpo"])
def test_only_decoding_time_methods_change_the_decoding(method):
    params = read_params(ROOT_PARAMS)
    got = method_decoding(method, params)
    assert (got == Decoding()) == (method not in params["decoding"])
    assert params["methods"][method].startswith("models/")


def test_a_bad_section_is_one_error_naming_the_key():
    params = read_params(ROOT_PARAMS)
    with pytest.raises(ConfigError, match="self_debias.epsilon"):
        method_decoding("self_debias", {**params, "self_debias": {"epsilon": 0.0}})
    with pytest.raises(ConfigError, match="unknown key 'instructive.prefx'"):
        method_decoding("instructive", {**params, "instructive": {"prefx": "x"}})


def test_the_registry_decides_which_methods_decode_their_own_way():
    params = read_params(ROOT_PARAMS)
    renamed = {**params, "decoding": {"polite": params["decoding"]["instructive"]},
               "methods": {**params["methods"], "polite": "models/sft"}}
    assert method_decoding("polite", renamed).prefix == instructive.PAPER_PREFIX
    assert method_decoding("instructive", renamed) == Decoding()

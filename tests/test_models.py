import json

import pytest
import torch
from safetensors.torch import load_file

from aligntax.config import ConfigError, load_section
from aligntax.models import ModelConfig, build_prompt, load_model, load_tokenizer, prepare_base_model


def test_prepare_model_from_local_tiny_llama(tiny_llama_dir, tmp_path):
    out = tmp_path / "base"
    info = prepare_base_model(ModelConfig(name=str(tiny_llama_dir)), out)
    assert info["architecture"] == "LlamaForCausalLM" and info["layers"] == 2 and info["hidden_size"] == 32
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    original = load_model(tiny_llama_dir)
    saved = load_file(out / "model.safetensors")
    for name, tensor in original.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], tensor), name
    assert load_tokenizer(out).pad_token is not None


def test_unknown_hub_id_offline_fails_naming_the_param(tmp_path):
    with pytest.raises(RuntimeError, match="model.name: could not load 'no-such-org/no-such-model'.*smollm2-135m-instruct"):
        prepare_base_model(ModelConfig(name="no-such-org/no-such-model"), tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_model_params_validation():
    with pytest.raises(ConfigError, match="model.prompt_template"):
        load_section({"model": {"prompt_template": "no placeholder"}}, "model", ModelConfig)
    with pytest.raises(ConfigError, match="model.dtype'; allowed: float32 | bfloat16 | float16".replace("|", r"\|")):
        load_section({"model": {"dtype": "fp8"}}, "model", ModelConfig)
    assert build_prompt("Post: {post}\nTL;DR:", "  hi there \n") == "Post: hi there\nTL;DR:"


@pytest.mark.slow
def test_packaged_gguf_converts_to_a_working_safetensors_llama(packaged_model_dir):
    config = json.loads((packaged_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] == 576 and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config
    model = load_model(packaged_model_dir)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    tok = load_tokenizer(packaged_model_dir)
    # Real (not random or mangled) weights: natural text is far more likely than its words shuffled.
    text = "I forgot my keys at home this morning, so I had to wait outside in the rain for an hour."
    shuffled = "hour morning rain the keys outside I so, an wait had forgot home in my this at to for."

    def ppl(t):
        enc = tok([t], return_tensors="pt")
        with torch.no_grad():
            return torch.exp(model(**enc, labels=enc.input_ids).loss).item()

    assert ppl(text) < 60 and ppl(shuffled) > 4 * ppl(text)


@pytest.mark.slow
def test_packaged_tokenizer_eos_matches_the_model_stop_token(packaged_model_dir):
    from aligntax.models import align_special_tokens

    model = load_model(packaged_model_dir)
    tok = load_tokenizer(packaged_model_dir)
    tok.eos_token = "<|im_start|>"  # what the GGUF tokenizer reports
    align_special_tokens(model, tok)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == model.config.eos_token_id == 2
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == tok.pad_token_id

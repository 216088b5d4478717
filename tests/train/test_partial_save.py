"""Saving only what trained (top_layers, LoRA, a projected head) and loading it back on its base."""

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from aligntax.baselines.projection import save_projected_model
from aligntax.models import POINTER_FILE, load_model, load_tokenizer
from aligntax.train.objective import HEAD_NAME
from aligntax.train.trainer import TrainConfig, save_model, select_trainable

IDS = torch.tensor([[3, 17, 42, 99, 5, 250, 7, 8]])


def _dir_bytes(path):
    return sum(f.stat().st_size for f in path.iterdir())


def _trained(base_dir, trainable="top_layers", dtype="float32", head=False):
    """The base loaded and selected as training does, with its trainable tensors moved (a stand-in for steps)."""
    model = load_model(base_dir, dtype=dtype)
    if head:
        model.add_module(HEAD_NAME, torch.nn.Linear(32, 32))
    model = select_trainable(model, TrainConfig(trainable=trainable, top_layers=1))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return model


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture
def base_dir(tmp_path, build_tiny):
    """A tiny Llama with a bigger vocabulary share than the fixture's: the frozen part dominates its size."""
    return build_tiny(tmp_path / "base", "llama")


def test_top_layers_saves_only_what_trained_and_loads_the_same_model(base_dir, tmp_path):
    model = _trained(base_dir)
    save_model(model, load_tokenizer(base_dir), tmp_path / "sft")
    saved = load_file(tmp_path / "sft" / "model.safetensors")
    assert saved and all(k.startswith("model.layers.1.") or k == "model.norm.weight" for k in saved)
    full = (base_dir / "model.safetensors").stat().st_size
    assert (tmp_path / "sft" / "model.safetensors").stat().st_size < 0.5 * full
    pointer = json.loads((tmp_path / "sft" / POINTER_FILE).read_text())
    assert pointer["base"] == "../base"
    loaded = load_model(tmp_path / "sft", dtype="float32")
    assert torch.equal(_logits(loaded), _logits(model))
    assert not torch.equal(_logits(loaded), _logits(load_model(base_dir, dtype="float32")))


def test_saved_tensors_keep_the_training_dtype(base_dir, tmp_path):
    save_model(_trained(base_dir, dtype="bfloat16"), load_tokenizer(base_dir), tmp_path / "bf16")
    assert {v.dtype for v in load_file(tmp_path / "bf16" / "model.safetensors").values()} == {torch.bfloat16}
    assert load_model(tmp_path / "bf16").dtype == torch.bfloat16


def test_full_training_saves_the_whole_model(base_dir, tmp_path):
    model = _trained(base_dir, trainable="full")
    save_model(model, load_tokenizer(base_dir), tmp_path / "full")
    assert not (tmp_path / "full" / POINTER_FILE).exists()
    assert set(load_file(tmp_path / "full" / "model.safetensors")) == set(load_file(base_dir / "model.safetensors"))
    assert torch.equal(_logits(load_model(tmp_path / "full", dtype="float32")), _logits(model))


def test_lora_saves_the_merged_adapted_weights_only(tiny_gpt2_dir, tmp_path):
    base = shutil.copytree(tiny_gpt2_dir, tmp_path / "base")
    model = _trained(base, trainable="lora", head=True)  # the contrastive head goes to its own file
    expected = _logits(copy.deepcopy(model).merge_and_unload())
    save_model(model, load_tokenizer(base), tmp_path / "lora")
    saved = load_file(tmp_path / "lora" / "model.safetensors")
    assert saved and all(k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) for k in saved)
    assert (tmp_path / "lora" / f"{HEAD_NAME}.safetensors").is_file()
    assert torch.allclose(_logits(load_model(tmp_path / "lora", dtype="float32")), expected, atol=1e-6)


def test_changed_base_is_one_clear_error(base_dir, tmp_path, build_tiny):
    save_model(_trained(base_dir), load_tokenizer(base_dir), tmp_path / "sft")
    build_tiny(base_dir, "llama", seed=3)  # the base is re-created with other weights
    with pytest.raises(RuntimeError, match=r"sft: saved on top of .*base, whose weights have changed.*"
                                           r"dvc repro train@sft"):
        load_model(tmp_path / "sft")


def test_missing_base_is_one_clear_error(base_dir, tmp_path):
    save_model(_trained(base_dir), load_tokenizer(base_dir), tmp_path / "sft")
    shutil.rmtree(base_dir)
    with pytest.raises(FileNotFoundError, match=r"sft: holds only its trained tensors and its base .*base is missing"):
        load_model(tmp_path / "sft")


@pytest.mark.parametrize("tensors", [{"model.layers.1.mlp.up_proj.weight": torch.zeros(5, 5)},
                                     {"model.layers.7.mlp.up_proj.weight": torch.zeros(64, 32)}])
def test_saved_tensor_not_in_the_base_is_one_clear_error(tensors, base_dir, tmp_path):
    save_model(_trained(base_dir), load_tokenizer(base_dir), tmp_path / "sft")
    save_file(tensors, str(tmp_path / "sft" / "model.safetensors"))
    with pytest.raises(RuntimeError, match=r"sft: saved tensors \['model.layers.\d.mlp.up_proj.weight'\] are not in "
                                           r"its base .*base \(or have another shape\).*dvc repro train@sft"):
        load_model(tmp_path / "sft")


def test_projection_chain_loads_through_sft_to_base(base_dir, tmp_path):
    save_model(_trained(base_dir), load_tokenizer(base_dir), tmp_path / "sft")
    sft = load_model(tmp_path / "sft", dtype="float32")
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(32, 2)))
    projection = np.eye(32) - q @ q.T
    save_projected_model(sft, load_tokenizer(tmp_path / "sft"), projection, tmp_path / "inlp", "inlp")
    assert set(load_file(tmp_path / "inlp" / "model.safetensors")) == {"lm_head.weight"}
    assert json.loads((tmp_path / "inlp" / POINTER_FILE).read_text())["base"] == "../sft"
    loaded = load_model(tmp_path / "inlp", dtype="float32")
    assert not loaded.config.tie_word_embeddings
    assert torch.allclose(_logits(loaded), _logits(sft), atol=1e-5)
    embed = load_model(tmp_path / "sft", dtype="float32").get_input_embeddings().weight
    assert torch.equal(loaded.get_input_embeddings().weight, embed)  # the head was untied, not written into it
    assert not torch.equal(loaded.get_output_embeddings().weight, embed)

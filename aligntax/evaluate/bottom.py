"""The frozen bottom shared across methods: its states computed once per text and kept in a store.

In the default run every trained method changes only the top blocks of models/base (train:
`trainable: top_layers`), inlp and sentence_debias only sft's LM head, and self_debias decodes
sft, so the states of blocks [0, split) of an eval text are the same for all of them. ``Runner``
runs a method's model block by block: the bottom's output (and, for a generation prefill, its KV
cache) comes from ``StateStore`` when an earlier process computed it, and only the method's own
blocks [split, L), the final norm and the LM head run. Decoding new tokens still runs the whole
model (transformers' ``generate``).

**Split.** ``find_split`` reads what a method's folder holds: a partial folder
(aligntax/models.py ``save_partial``) lists exactly its saved tensors and points to its base;
the union of the saved tensors along the chain (inlp -> sft -> base) is what differs from the
root. split = the lowest changed block (the number of blocks when only the final norm or the LM
head changed). A full model (models/base, or a method trained with `trainable: full`) is a root:
it changes nothing, so any split gives it the same outputs, and it takes the split its partial
folders were last evaluated with in this store (``splits.json``), so a re-run of evaluate@base
reads their entries; off until then. Off, with one log line, when anything below the blocks
changed (embeddings), when the
bottom block changed (LoRA merges every block), when the config differs from the root's in
anything but dropout, or when the model is not Llama-like (embed_tokens, rotary_emb, layers,
norm, lm_head; full-attention caches only).

**Exact.** The same block loop runs whether the bottom came from the store or was computed, so a
method's outputs do not depend on the store; tests/evaluate/test_bottom.py checks the logits and
margins against the plain transformers forward (to 1e-5) and the greedy generations (identical).

**Store.** One safetensors file per (root weights ``weights_hash``, split, dtype, device,
attention backend, torch and transformers versions, and the exact input ids, position ids and
attention mask of the batch, which fix its composition and padding), named by the sha256 of all
of it: ``<root>/<weights hash[:16]>/<key[:2]>/<key>.safetensors``, tensors ``hidden`` (the
states entering block split) and, for a prefill, ``key.<i>`` / ``value.<i>`` of blocks i < split;
its metadata repeats the key. Written atomically (temporary file, then rename); a read checks the
key, the tensor names, shapes and dtype and that ``hidden`` is finite, and a bad entry is deleted
and recomputed with one log line. Never reused when the base weights, the split or a text
differ, since they are in the key. Root: ``$ALIGNTAX_STATE_CACHE``, else
``$XDG_CACHE_HOME/aligntax/states``, else ``~/.cache/aligntax/states``; ``ALIGNTAX_STATE_CACHE=off``
turns the store off (results are the same, only slower). Nothing evicts entries: delete the
folder to reclaim the space (the default run writes ~0.8 GB, see docs/preference.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.masking_utils import create_causal_mask

from aligntax.generation import kv_cache
from aligntax.models import POINTER_FILE, WEIGHTS_FILE, base_of, weights_hash

log = logging.getLogger(__name__)

ENV = "ALIGNTAX_STATE_CACHE"
FORMAT = 1
"""Bumped when the entry layout changes, so old entries are never read as new ones."""
SPLITS = "splits.json"
"""Per root weights: the splits its partial folders were evaluated with, most recent last."""
HARMLESS_CONFIG = re.compile(r"dropout|pdrop|^_name_or_path$|^transformers_version$|^tie_word_embeddings$|^use_cache$")
"""Config keys a method may change without changing its frozen bottom at evaluation (no dropout in eval
mode; tied embeddings only decide where the LM head comes from; trainers turn use_cache off)."""


@dataclass(frozen=True)
class Split:
    root: Path
    """The full model folder at the end of the method's pointer chain (models/base by default)."""
    weights: str
    """``weights_hash`` of the root."""
    layer: int
    """Blocks [0, layer) are the root's, unchanged."""


def store_root() -> Path | None:
    """Where the store lives (None: turned off); see the module docstring."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if cache else Path.home() / ".cache") / "aligntax" / "states"


def blockwise(model: PreTrainedModel) -> bool:
    """Whether ``Runner`` can run ``model`` block by block (Llama-like, full-attention caches only)."""
    inner = getattr(model, "model", None)
    parts = ("embed_tokens", "rotary_emb", "layers", "norm")
    types = getattr(model.config, "layer_types", None) or ["full_attention"]
    return (inner is not None and all(hasattr(inner, p) for p in parts) and hasattr(model, "lm_head")
            and getattr(model.config, "sliding_window", None) is None and set(types) == {"full_attention"})


def find_split(model_dir: str | Path, model: PreTrainedModel, store: StateStore | None = None) -> Split | None:
    """Where ``model`` (loaded from ``model_dir``) starts to differ from the root of its chain; None
    (logged) when no bottom is shared. With a ``store``, a partial folder's split is noted there, and
    a root (models/base) takes the split its partial folders used most recently, if any: its outputs
    are the same at any split, so it only saves them the work."""
    folder, changed, chain = Path(model_dir), set(), []
    while (folder / POINTER_FILE).is_file():
        with safe_open(str(folder / WEIGHTS_FILE), "pt") as fh:
            changed |= set(fh.keys())
        chain.append(folder)
        folder = Path(os.path.normpath(base_of(folder)))
    why = None
    prefix = re.escape(model.base_model_prefix)
    blocks = {int(m.group(1)) for k in changed if (m := re.match(rf"{prefix}\.layers\.(\d+)\.", k))}
    below = sorted(k for k in changed if not re.match(rf"({prefix}\.(layers\.\d+|norm)|lm_head)\.", k))
    layer = min(blocks, default=model.config.num_hidden_layers)
    if not blockwise(model):
        why = f"{type(model).__name__} is not run block by block here"
    elif below:
        why = f"it changes {below[0]} below the blocks"
    elif layer == 0:
        why = "it changes the bottom block (LoRA or full training)"
    elif chain:
        why = _config_change(chain, folder)
    elif store is None or not 0 < (layer := store.known_split(weights_hash(folder)) or 0) <= len(model.model.layers):
        why = "it is a full model, and no model derived from it has been evaluated with this store yet"
    if why:
        log.info("%s: no shared bottom: %s", model_dir, why)
        return None
    split = Split(folder, weights_hash(folder), layer)
    if chain and store is not None:
        store.note_split(split)
    log.info("%s: blocks [0, %d) of %d shared with %s", model_dir, layer, model.config.num_hidden_layers, folder)
    return split


def _config_change(chain: list[Path], root: Path) -> str | None:
    def config(folder: Path) -> dict:
        return {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not HARMLESS_CONFIG.search(k)}

    want = config(root)
    for folder in chain:
        got = config(folder)
        diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        if diff:
            return f"{folder}/config.json sets {diff[0]}={got.get(diff[0])!r} (root: {want.get(diff[0])!r})"
    return None


@dataclass
class StateStore:
    """Content-keyed safetensors entries of bottom states (see the module docstring)."""

    root: Path
    stats: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("hits", "misses", "bad", "bytes_read", "bytes_written", "seconds"), 0))

    def key(self, fields: dict, tensors: dict[str, torch.Tensor]) -> tuple[str, str]:
        """(sha256 of ``fields`` and the bytes of ``tensors``, the JSON written into the entry)."""
        head = {**fields, "format": FORMAT, "tensors": [[n, str(t.dtype), list(t.shape)] for n, t in tensors.items()]}
        digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
        for t in tensors.values():
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        key = digest.hexdigest()
        return key, json.dumps({**head, "key": key}, sort_keys=True)

    def path(self, weights: str, key: str) -> Path:
        return self.root / weights[:16] / key[:2] / f"{key}.safetensors"

    def known_split(self, weights: str) -> int | None:
        """The split most recently noted for the root with ``weights`` (None: none, or an unreadable note)."""
        try:
            return int(json.loads((self.root / weights[:16] / SPLITS).read_text())["splits"][-1])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def note_split(self, split: Split) -> None:
        """Note ``split`` as the most recent one used with its root (atomically; only logs on failure)."""
        path = self.root / split.weights[:16] / SPLITS
        try:
            known = [int(s) for s in json.loads(path.read_text())["splits"]] if path.is_file() else []
        except (OSError, ValueError, KeyError, TypeError):
            known = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{SPLITS}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps({"splits": [s for s in known if s != split.layer] + [split.layer]}) + "\n")
            os.replace(tmp, path)
        except OSError as err:
            log.warning("%s: split not noted (%s)", path, err)

    def load(self, path: Path, meta: str, check) -> dict[str, torch.Tensor] | None:
        """The entry at ``path`` if it is there and valid (``check(tensors)`` returns a reason when not)."""
        if not path.is_file():
            self.stats["misses"] += 1
            return None
        start = time.perf_counter()
        try:
            with safe_open(str(path), "pt") as fh:
                stored = (fh.metadata() or {}).get("key")
            tensors = load_file(str(path))
            reason = "another key" if stored != meta else check(tensors)
        except (OSError, SafetensorError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}"
        if reason:
            log.warning("%s: bad bottom-state entry (%s): deleted, recomputing", path, reason)
            path.unlink(missing_ok=True)
            self.stats["bad"] += 1
            self.stats["misses"] += 1
            return None
        self.stats["hits"] += 1
        self.stats["bytes_read"] += path.stat().st_size
        self.stats["seconds"] += time.perf_counter() - start
        return tensors

    def save(self, path: Path, meta: str, tensors: dict[str, torch.Tensor]) -> None:
        """Write the entry atomically (a failed write leaves no file and only logs: the store is a cache)."""
        start = time.perf_counter()
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata={"key": meta})
            os.replace(tmp, path)
            self.stats["bytes_written"] += path.stat().st_size
        except OSError as err:
            log.warning("%s: bottom states not stored (%s)", path, err)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        self.stats["seconds"] += time.perf_counter() - start


class Runner:
    """A method's model run block by block, its shared bottom from ``store`` (see the module docstring)."""

    def __init__(self, model: PreTrainedModel, split: Split | None, store: StateStore | None) -> None:
        self.model = model
        self.blockwise = blockwise(model)
        self.split = split if self.blockwise else None
        self.store = store if self.split is not None else None

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> DynamicCache:
        """KV cache of every block for a left-padded batch (``aligntax.generation.Prefill``)."""
        cache = kv_cache(self.model.config)
        hidden, causal, rope, where = self._start(ids, mask, pos, cache)
        hidden = self._bottom("prefill", hidden, causal, rope, where, pos, cache, {"ids": ids, "mask": mask, "pos": pos})
        self._blocks(hidden, self.split.layer if self.split else 0, causal, rope, where, pos, cache)
        return cache

    def logits(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Logits [len(keep), vocab] at positions ``keep`` of one row (``mask``: 4-D additive)."""
        if not self.blockwise:
            out = self.model(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=False, logits_to_keep=keep)
            return out.logits[0]
        hidden, causal, rope, where = self._start(ids, mask, pos, None)
        hidden = self._bottom("packed", hidden, causal, rope, where, pos, None, {"ids": ids, "mask": mask, "pos": pos})
        hidden = self._blocks(hidden, self.split.layer if self.split else 0, causal, rope, where, pos, None)
        return self.model.lm_head(self.model.model.norm(hidden)[:, keep])[0]

    def _start(self, ids, mask, pos, cache):
        # As LlamaModel.forward: embeddings, the attention mask it builds, rotary position embeddings.
        inner = self.model.model
        hidden = inner.embed_tokens(ids)
        where = torch.arange(ids.shape[1], device=ids.device)
        causal = create_causal_mask(config=inner.config, input_embeds=hidden, attention_mask=mask,
                                    cache_position=where, past_key_values=cache, position_ids=pos)
        return hidden, causal, inner.rotary_emb(hidden, pos), where

    def _blocks(self, hidden, start, causal, rope, where, pos, cache, end=None):
        for layer in self.model.model.layers[start:end]:
            hidden = layer(hidden, attention_mask=causal, position_ids=pos, past_key_values=cache,
                           cache_position=where, position_embeddings=rope)
        return hidden

    def _bottom(self, kind, hidden, causal, rope, where, pos, cache, inputs):
        """States entering block split: from the store, else computed (and stored)."""
        if self.split is None:
            return hidden
        layer = self.split.layer
        if self.store is None:
            return self._blocks(hidden, 0, causal, rope, where, pos, cache, end=layer)
        fields = {"kind": kind, "weights": self.split.weights, "split": layer, "dtype": str(self.model.dtype),
                  "device": hidden.device.type, "attention": self.model.config._attn_implementation,
                  "torch": torch.__version__, "transformers": transformers.__version__}
        key, meta = self.store.key(fields, inputs)
        path = self.store.path(self.split.weights, key)
        names = ["hidden"] + ([f"{n}.{i}" for i in range(layer) for n in ("key", "value")] if cache is not None else [])
        got = self.store.load(path, meta, lambda t: self._invalid(t, names, hidden.shape))
        if got is not None:
            for i in range(layer if cache is not None else 0):
                cache.update(got[f"key.{i}"].to(hidden.device), got[f"value.{i}"].to(hidden.device), i)
            return got["hidden"].to(hidden.device)
        hidden = self._blocks(hidden, 0, causal, rope, where, pos, cache, end=layer)
        tensors = {"hidden": hidden}
        for i in range(layer if cache is not None else 0):
            tensors[f"key.{i}"], tensors[f"value.{i}"] = cache.layers[i].keys, cache.layers[i].values
        self.store.save(path, meta, tensors)
        return hidden

    def _invalid(self, tensors: dict[str, torch.Tensor], names: list[str], shape: torch.Size) -> str | None:
        if sorted(tensors) != sorted(names):
            return "other tensors"
        attn = self.model.model.layers[0].self_attn
        kv_shape = (shape[0], attn.k_proj.out_features // attn.head_dim, shape[1], attn.head_dim)
        for name, t in tensors.items():
            want = tuple(shape) if name == "hidden" else kv_shape
            if tuple(t.shape) != want or t.dtype != self.model.dtype:
                return f"{name} is {t.dtype} {tuple(t.shape)}, expected {self.model.dtype} {want}"
        if not torch.isfinite(tensors["hidden"]).all():
            return "non-finite states"
        return None

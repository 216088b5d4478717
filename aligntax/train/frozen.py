"""Training on cached frozen states: the frozen bottom's output, computed once per text.

With `train.trainable: top_layers` the bottom of the model (embeddings and the blocks below the
split, split = blocks - `train.top_layers`) never changes, so neither does what it hands the first
trained block for a given text. ``FrozenStore`` computes those states once (``fill``), keeps them
in memory for the run and on disk across runs, and the collators put them in the batch
(``frozen_states``); the objective then runs only the top blocks (``objective.last_hidden``).

A *piece* is a run of tokens and the context it reads: a prompt (no context, positions 0..p-1) or
a summary (the prompt as context, positions p..p+n-1, reading the prompt and itself). That is what
every layout computes (the naive row, the packed row's block mask, the unlikelihood row), so one
entry serves them all: `sft` and `contrastive` share their prompts and references, and every
ablation run on the same posts reuses every entry.

The on-disk store lives outside the workspace, so the runs of `dvc exp run --queue` (each in its
own temporary workspace) share it: ``$ALIGNTAX_FROZEN_CACHE``, else
``$XDG_CACHE_HOME/aligntax/frozen``, else ``~/.cache/aligntax/frozen``; ``ALIGNTAX_FROZEN_CACHE=off``
keeps the states in memory only. Layout and key (docs/training.md):

    <root>/<model key[:16]>/model.json                 what the model key hashes (for a reader)
    <root>/<model key[:16]>/<entry key>.safetensors    tensor "states" [n tokens, hidden], model dtype

    model key = sha256(json {"format", "weights": models.weights_hash(base), "config": sha256 of the
                             loaded model config, "split", "dtype"})
    entry key = sha256(json {"model": model key, "context": [prompt ids] or [], "ids": [piece ids]})

An entry is written atomically (temporary file, then rename) and checked on read (readable, its
metadata names this model and entry, shape [n, hidden], dtype, finite); a bad one is deleted and
recomputed with one log line. Other weights, config, split, dtype or tokens give another key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm
from transformers import DynamicCache

from aligntax.generation import kv_cache
from aligntax.models import weights_hash
from aligntax.train.objective import decoder_and_head, decoder_blocks, only_blocks

log = logging.getLogger(__name__)

ENV = "ALIGNTAX_FROZEN_CACHE"
"""Environment variable: the on-disk store's folder, or `off` for memory only."""
FORMAT = 1
Pieces = Callable[[Any], tuple[list[int], list[list[int]]]]
"""(prompt ids, ids of each summary read behind it) of one training example."""


def store_root() -> Path | None:
    """The on-disk store folder (None: memory only), from $ALIGNTAX_FROZEN_CACHE or the user's cache folder."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none", "0") else Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aligntax" / "frozen"


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def config_hash(config: Any) -> str:
    """sha256 of a model config as loaded (overrides included), without where it was loaded from."""
    return _sha({k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "transformers_version")})


class _Stop(Exception):
    """Ends the forward pass once the input of the split block is captured."""


def bottom_states(
    model: nn.Module, ids: Sequence[int], start: int, split: int, cache: DynamicCache | None = None,
) -> torch.Tensor:
    """What block ``split`` reads for the tokens ``ids`` at positions start.., [len(ids), hidden] on the CPU:
    the embeddings and blocks below the split run, nothing above. With ``cache`` the tokens read
    what it holds (positions 0..start-1, causally) and their keys/values are added to it."""
    decoder, _ = decoder_and_head(model)
    device = next(decoder.parameters()).device
    seen: dict[str, torch.Tensor] = {}

    def capture(module, args, kwargs):
        seen["h"] = args[0] if args else kwargs["hidden_states"]
        raise _Stop

    handle = decoder_blocks(model)[split].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            decoder(input_ids=torch.tensor([list(ids)], device=device),
                    position_ids=torch.arange(start, start + len(ids), device=device)[None],
                    past_key_values=cache, use_cache=cache is not None)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen["h"][0].cpu()


def bottom_modules(model: nn.Module, split: int) -> list[nn.Module]:
    """The decoder's modules outside its block list (embeddings, rotary, norm ...) and the blocks below the split."""
    decoder, _ = decoder_and_head(model)
    layers = decoder_blocks(model)
    return [m for m in decoder.children() if m is not layers] + [layers[i] for i in range(split)]


def snapshot(model: nn.Module, split: int) -> list:
    """Identity and version of every tensor below the split and the hooks on it: a change shows a rewrite."""
    out = []
    for module in bottom_modules(model, split):
        for sub in module.modules():
            out.append((len(sub._forward_hooks), len(sub._forward_pre_hooks)))
        for t in [*module.parameters(), *module.buffers()]:
            out.append((id(t), t.data_ptr(), t._version))
    return out


def _dropout_below(model: nn.Module, split: int) -> str | None:
    for module in bottom_modules(model, split):
        for name, sub in module.named_modules():
            rates = {"p": sub.p} if isinstance(sub, nn.Dropout) else {
                k: v for k, v in vars(sub).items() if "dropout" in k and isinstance(v, float)}
            for key, p in rates.items():
                if p > 0:
                    return f"{type(sub).__name__}{'.' + name if name else ''} {key}={p:g}"
    return None


def why_not(model: nn.Module, split: int, before: list, probe: Sequence[int]) -> str | None:
    """Why the bottom is not frozen and deterministic (None: it is): something below the split
    trains, changed since ``before`` (the method's setup_model), or draws randomness in training."""
    layers = decoder_blocks(model)
    below = [layers[i] for i in range(split)]
    below += [m for m in bottom_modules(model, split) if isinstance(m, nn.Embedding)]
    trains = next((n for m in below for n, p in m.named_parameters() if p.requires_grad), None)
    if trains is not None:
        return f"a parameter below block {split} trains ({trains})"
    if snapshot(model, split) != before:
        return f"the method's setup_model changed the model below block {split} (weights or hooks)"
    dropout = _dropout_below(model, split)
    if dropout is not None:
        return f"dropout below block {split} ({dropout}) makes the bottom random in training"
    mode = model.training
    try:
        runs = []
        for training in (True, True, False):
            model.train(training)
            runs.append(bottom_states(model, probe[:64], 0, split))
    finally:
        model.train(mode)
    if not all(torch.allclose(runs[0], r, rtol=1e-5, atol=1e-6) for r in runs[1:]):
        return f"the model below block {split} is not deterministic in training mode (two probe runs differ)"
    return None


class FrozenStore:
    """The split block's input for every piece of the training examples, in memory and on disk."""

    def __init__(self, model: nn.Module, split: int, base_dir: str | Path, root: Path | None):
        param = next(model.parameters())
        self.split, self.dtype, self.hidden = split, param.dtype, model.config.hidden_size
        self.meta = {"format": FORMAT, "weights": weights_hash(base_dir), "config": config_hash(model.config),
                     "split": split, "dtype": str(param.dtype).removeprefix("torch.")}
        self.model_key = _sha(self.meta)
        self.folder = root / self.model_key[:16] if root is not None else None
        self.states: dict[tuple[tuple[int, ...], tuple[int, ...]], torch.Tensor] = {}
        self.counts: Counter = Counter()
        if self.folder is not None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / "model.json").write_text(json.dumps(self.meta, indent=2) + "\n")
            except OSError as err:
                log.warning("frozen states: cannot write the store %s (%s); keeping them in memory only",
                            self.folder, err)
                self.folder = None

    def entry_key(self, context: Sequence[int], ids: Sequence[int]) -> str:
        return _sha({"model": self.model_key, "context": list(context), "ids": list(ids)})

    def _read(self, path: Path, key: str, n: int) -> torch.Tensor:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            states = fh.get_tensor("states")
        if meta.get("model") != self.model_key or meta.get("entry") != key:
            raise ValueError("its metadata names another model or entry")
        if tuple(states.shape) != (n, self.hidden) or states.dtype != self.dtype:
            raise ValueError(f"shape {tuple(states.shape)} {states.dtype}, expected ({n}, {self.hidden}) {self.dtype}")
        if not torch.isfinite(states).all():
            raise ValueError("non-finite values")
        return states

    def _load(self, context: tuple[int, ...], ids: tuple[int, ...]) -> bool:
        """Whether the piece is in memory now (read from disk if there and valid)."""
        if (context, ids) in self.states:
            return True
        if self.folder is None:
            return False
        key = self.entry_key(context, ids)
        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return False
        try:
            self.states[(context, ids)] = self._read(path, key, len(ids))
        except Exception as err:  # a truncated or foreign file: any failure to read it means recompute
            log.warning("frozen states: bad entry %s (%s: %s); deleted, recomputing", path.name,
                        type(err).__name__, err)
            path.unlink(missing_ok=True)
            self.counts["bad_entries"] += 1
            return False
        self.counts["from_disk"] += 1
        return True

    def _save(self, context: tuple[int, ...], ids: tuple[int, ...], states: torch.Tensor) -> None:
        self.states[(context, ids)] = states
        self.counts["computed"] += 1
        if self.folder is None:
            return
        key = self.entry_key(context, ids)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        try:
            save_file({"states": states}, str(tmp), metadata={"model": self.model_key, "entry": key,
                                                              "format": str(FORMAT)})
            os.replace(tmp, self.folder / f"{key}.safetensors")
        except (OSError, SafetensorError) as err:  # safetensors reports a full disk as a SafetensorError
            tmp.unlink(missing_ok=True)
            log.warning("frozen states: cannot write to %s (%s); keeping them in memory only", self.folder, err)
            self.folder = None

    def fill(self, model: nn.Module, examples: Sequence, pieces: Pieces) -> None:
        """Load or compute the states of every piece of ``examples`` (the bottom reads each prompt once)."""
        mode = model.training
        model.train(False)
        try:
            for ex in tqdm(examples, desc="frozen states", leave=False):
                prompt, segments = pieces(ex)
                prompt = tuple(prompt)
                wanted = list(dict.fromkeys(tuple(s) for s in segments))
                missing = [s for s in wanted if not self._load(prompt, s)]
                if not self._load((), prompt) or missing:
                    self._compute(model, prompt, missing)
        finally:
            model.train(mode)
        self.counts["pieces"] = len(self.states)

    def _compute(self, model: nn.Module, prompt: tuple[int, ...], segments: list[tuple[int, ...]]) -> None:
        """The prompt's states, then each segment's read behind the prompt's keys and values.

        Every piece is computed the same way whatever else is missing, so an entry's bytes never
        depend on which runs filled the store before (a run from an empty store equals a warm one).
        """
        cache = kv_cache(model.config)
        states = bottom_states(model, prompt, 0, self.split, cache)
        if ((), prompt) not in self.states:
            self._save((), prompt, states.to(self.dtype))
        for s in segments:
            self._save(prompt, s, bottom_states(model, s, len(prompt), self.split, cache).to(self.dtype))
            cache.crop(len(prompt))

    def row_states(self, rows: Sequence[Sequence[tuple[Sequence[int], Sequence[int]]]], width: int) -> torch.Tensor:
        """[rows, width, hidden]: each row's pieces (context, ids) one after the other, zeros after them."""
        out = torch.zeros(len(rows), width, self.hidden, dtype=self.dtype)
        for r, row in enumerate(rows):
            at = 0
            for context, ids in row:
                key = (tuple(context), tuple(ids))
                if key not in self.states:
                    raise KeyError(f"frozen states: a piece of {len(ids)} tokens was never filled (FrozenStore.fill)")
                out[r, at: at + len(ids)] = self.states[key]
                at += len(ids)
        return out

    def metrics(self) -> dict:
        """Counts for the metrics JSON: pieces, computed, from_disk, bad_entries, MiB in memory, disk on."""
        mib = sum(t.numel() * t.element_size() for t in self.states.values()) / 2**20
        return {"used": True, "split": self.split, "disk": self.folder is not None, "pieces": len(self.states),
                "computed": self.counts["computed"], "from_disk": self.counts["from_disk"],
                "bad_entries": self.counts["bad_entries"], "mib": round(mib, 1)}


def top_on_rows(model: nn.Module, store: FrozenStore) -> Callable[[], None]:
    """Make ``model``'s decoder run only the blocks above ``store.split``, on the stored states, and
    return the function that undoes it.

    Each row of a batch must be right-padded (``attention_mask`` 1s then 0s) and hold a prompt
    followed by one summary piece the store was filled with, as trl's preference collator builds
    them (a summary cut by its ``max_length`` is filled cut); a row that is not is an error, never
    a silent fall back to the whole model. Position ids are the rows' own (0..), as the plain
    forward gives right-padded rows. Calls with a key/value cache (generation) run the whole model.
    """
    decoder, _ = decoder_and_head(model)
    original = decoder.forward
    rows = {context + ids: (context, ids) for context, ids in store.states if context}
    top = range(store.split, len(decoder_blocks(model)))

    def forward(input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs):
        if input_ids is None or kwargs.get("use_cache") or kwargs.get("past_key_values") is not None:
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pieces = []
        for r, n in enumerate(mask.sum(1).tolist()):
            if not bool(mask[r, :n].all()):
                raise ValueError("frozen states: a batch row is not right-padded; the top-only decoder reads "
                                 "prompt + summary rows as trl's preference collator builds them")
            ids = tuple(input_ids[r, :n].tolist())
            if ids not in rows:
                raise KeyError(f"frozen states: a row of {n} tokens is no prompt + summary the store was filled "
                               "with (the method's Job.pieces must tokenize as its Trainer does)")
            context, piece = rows[ids]
            pieces.append([((), context), (context, piece)])
        states = store.row_states(pieces, input_ids.shape[1])
        kwargs["position_ids"] = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        with only_blocks(model, top, states):
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    decoder.forward = forward
    return lambda: delattr(decoder, "forward")

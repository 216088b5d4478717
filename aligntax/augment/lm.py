"""Causal-LM calls of the augmentation stages: loading, sampling, greedy fill and lowest beams.

``sample_each`` draws many samples of each prompt (LM paraphrases, toxic rewrites): the prompt
is prefilled once, its KV cache repeated over the samples, which then decode as one batch, seeded
per prompt (so a post's samples depend only on its prompt, its seed and the sample count, never on
its chunk or the other posts); a few-shot prefix every prompt starts with is prefilled once for
all of them. Greedy fills go through aligntax.generation (left-padded batches); prompts are cut
with ``aligntax.generation.truncate_text``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from aligntax.generation import device, generate_ids
from aligntax.models import load_model, load_tokenizer

log = logging.getLogger(__name__)


def lm_folders(name: str | Path, base_dir: str | Path) -> list[Path]:
    """The local folder ``load_lm`` reads for ``name`` (none for a hub id): a chunk fingerprint input,
    so a changed model in the same folder never reuses chunks written with the old one."""
    if str(name) == "base":
        return [Path(base_dir)]
    return [Path(name)] if Path(name).is_dir() else []


def load_lm(name: str | Path, base_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``base`` -> the prepared base model in ``base_dir``; a folder or hub id -> that causal LM."""
    if str(name) == "base" or Path(name).is_dir():
        path = base_dir if str(name) == "base" else name
        model, tok = load_model(path), load_tokenizer(path, padding_side="left")
    else:
        try:
            tok = AutoTokenizer.from_pretrained(name, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(name)
        except OSError as err:
            raise RuntimeError(
                f"could not load LM '{name}' ({str(err).splitlines()[0]}); a hub id needs network "
                "access, use 'base' for the prepared base model"
            ) from err
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    return model.to(device()).eval(), tok


def newline_ids(tok: PreTrainedTokenizerBase) -> torch.Tensor:
    """Ids of every token whose text contains a line break."""
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    return torch.tensor([i for i, t in enumerate(texts) if "\n" in t], dtype=torch.long)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    seed: int = 0,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_ids: torch.Tensor | None = None,
) -> list[str]:
    """Continuation of each prompt (greedy, or sampled when ``sample``), decoded without specials.

    Batches keep the input order, so a seeded batch holds the same prompts however the posts were
    sorted elsewhere; ``stop_ids`` (e.g. ``newline_ids``) end a row early.
    """
    ids = generate_ids(model, tok, prompts, max_new_tokens, batch_size, sample=sample, temperature=temperature,
                       top_p=top_p, seed=seed, stop_ids=stop_ids, longest_first=False)
    return tok.batch_decode(ids, skip_special_tokens=True)


class SharedPrefix:
    """The KV cache of a text that prompts start with (the few-shot shots), prefilled once.

    Matching is on token ids, not on characters: a prompt reuses the cache for the tokens it
    shares with the prefix (tokenizers may merge the prefix's last characters with what follows,
    "\\n\\n" + "Original"), so a reused cache always equals prefilling the prompt itself.
    """

    @torch.inference_mode()
    def __init__(self, model: PreTrainedModel, tok: PreTrainedTokenizerBase, text: str):
        self.ids = tok(text, return_tensors="pt")["input_ids"][0].to(model.device)
        self.cache = DynamicCache()
        if len(self.ids):
            model(self.ids[None], past_key_values=self.cache, use_cache=True)

    def shared(self, ids: torch.Tensor) -> int:
        """How many leading tokens of ``ids`` (1-D) equal the prefix's."""
        n = min(len(ids), len(self.ids))
        differ = (ids[:n] != self.ids[:n]).nonzero()
        return int(differ[0]) if len(differ) else n


@torch.inference_mode()
def _prefill(model: PreTrainedModel, ids: torch.Tensor, prefix: SharedPrefix | None) -> DynamicCache:
    """The KV cache of ``ids[:-1]`` (1-D ids), taking the tokens shared with ``prefix`` from its cache."""
    reuse = min(prefix.shared(ids), len(ids) - 1) if prefix is not None else 0
    cache = DynamicCache()
    if reuse:
        cache = copy.deepcopy(prefix.cache)
        cache.crop(reuse)
    if len(ids) - 1 > reuse:
        model(ids[None, reuse:-1], past_key_values=cache, use_cache=True)
    return cache


@torch.inference_mode()
def sample_each(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    n: int,
    seeds: Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stop_ids: torch.Tensor | None = None,
    prefix: str = "",
) -> list[list[str]]:
    """``n`` sampled continuations of each prompt (decoded without specials), prompt by prompt.

    Each prompt is prefilled once (all but its last token; the tokens it shares with ``prefix``
    come from that prefix's cache, prefilled once per call); the cache is repeated over ``n`` rows
    and ``model.generate`` samples them as one batch after ``torch.manual_seed(seeds[i])``, so
    prompt i's samples depend only on (prompt, seed, n). A row stops at the model's end token or
    at any of ``stop_ids`` (kept in the text, e.g. ``newline_ids``).
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"sample_each: {len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    if n < 1:
        raise ValueError(f"sample_each: n={n}; draw at least one sample per prompt")
    model.eval()
    ends = [model.generation_config.eos_token_id, *(stop_ids.tolist() if stop_ids is not None else [])]
    gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
                               num_beams=1, pad_token_id=tok.pad_token_id,
                               eos_token_id=[int(e) for e in _flat(ends)])
    shared = SharedPrefix(model, tok, prefix) if prefix and prompts else None
    out: list[list[str]] = []
    for prompt, seed in tqdm(list(zip(prompts, seeds, strict=True)), desc="sample", unit="prompt",
                             disable=not prompts):
        ids = tok(prompt, return_tensors="pt")["input_ids"][0].to(model.device)
        cache = _prefill(model, ids, shared)
        cache.batch_repeat_interleave(n)
        rows = ids[None].expand(n, -1)
        torch.manual_seed(seed)
        new = model.generate(input_ids=rows, attention_mask=torch.ones_like(rows), past_key_values=cache,
                             generation_config=gen_cfg)[:, len(ids):]
        out.append(tok.batch_decode(new, skip_special_tokens=True))
    return out


def _flat(values: Sequence) -> list:
    """``values`` with nested lists (a generation config's several end tokens) flattened; None dropped."""
    return [x for v in values for x in (v if isinstance(v, list) else [v]) if x is not None]


@torch.inference_mode()
def lowest_beams(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    num_beams: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[tuple[str, float]]:
    """sys_lowcon: per prompt the lowest-scoring of its ``num_beams`` beam summaries and its score."""
    out: list[tuple[str, float]] = []
    for lo, hi in _batches(len(prompts), batch_size):
        enc = tok(list(prompts[lo:hi]), return_tensors="pt", padding=True, return_token_type_ids=False).to(model.device)
        width = enc["input_ids"].shape[1]
        res = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                             num_return_sequences=num_beams, output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(res.sequences[:, width:], skip_special_tokens=True)
        scores = res.sequences_scores.float().cpu().view(hi - lo, num_beams)
        for row in range(hi - lo):
            j = int(scores[row].argmin())
            out.append((texts[row * num_beams + j], float(scores[row, j])))
    return out

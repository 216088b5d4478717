"""Causal-LM calls of the augmentation stages: loading, sampling, greedy fills and beams.

Every call decodes one prompt at a time with ``continue_prompt``: the prompt is prefilled once
(all but its last token), its KV cache repeated over the rows ``model.generate`` decodes (the
samples, or the beams), which then decode as one batch; transformers' own generate would prefill
every row. A ``SharedPrefix`` (the few-shot shots of every rewrite prompt; the post that its
sys_lowcon and mask_regen prompts share) is prefilled once for all the prompts that start with it.
``sample_each`` seeds each prompt's samples on their own, so a post's samples depend only on its
prompt, its seed and the sample count, never on its chunk or the other posts. Prompts are cut with
``aligntax.generation.truncate_text``.
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

from aligntax.generation import device
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


class SharedPrefix:
    """The KV cache of a text that prompts start with (the few-shot shots, a post), prefilled once.

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
def continue_prompt(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompt: str,
    gen_cfg: GenerationConfig,
    prefix: SharedPrefix | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``model.generate`` on one prompt, prefilled once: (new token ids per returned row, beam scores or None).

    The prompt's cache (all but its last token; the tokens shared with ``prefix`` from its cache) is
    repeated over the rows generate decodes (``max(num_beams, num_return_sequences)``: generate expands
    the prompt itself but not a given cache), so its first step runs only the last token per row.
    Rows are returned in generate's order; seed the global generator first when sampling.
    """
    ids = tok(prompt, return_tensors="pt")["input_ids"][0].to(model.device)
    cache = _prefill(model, ids, prefix)
    cache.batch_repeat_interleave(max(gen_cfg.num_beams, gen_cfg.num_return_sequences))
    out = model.generate(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], past_key_values=cache,
                         generation_config=gen_cfg, return_dict_in_generate=True,
                         output_scores=gen_cfg.num_beams > 1)
    return out.sequences[:, len(ids):], getattr(out, "sequences_scores", None)


def end_ids(model: PreTrainedModel, stop_ids: torch.Tensor | None) -> list[int]:
    """The model's end token(s) plus ``stop_ids``: a row ends at any of them (kept in its text)."""
    eos = model.generation_config.eos_token_id
    ends = (eos if isinstance(eos, list) else [eos]) + (stop_ids.tolist() if stop_ids is not None else [])
    return [int(e) for e in ends if e is not None]


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

    Each prompt is prefilled once (``continue_prompt``; ``prefix``, the text the prompts start with,
    once per call) and its ``n`` samples decode as one batch after ``torch.manual_seed(seeds[i])``,
    so prompt i's samples depend only on (prompt, seed, n). A row stops at the model's end token or
    at any of ``stop_ids`` (e.g. ``newline_ids``). Sampling settings otherwise as
    ``aligntax.generation.generate_ids`` (transformers' defaults, top-k 50 included).
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"sample_each: {len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    if n < 1:
        raise ValueError(f"sample_each: n={n}; draw at least one sample per prompt")
    model.eval()
    gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
                               num_return_sequences=n, pad_token_id=tok.pad_token_id,
                               eos_token_id=end_ids(model, stop_ids))
    shared = SharedPrefix(model, tok, prefix) if prefix and prompts else None
    out: list[list[str]] = []
    for prompt, seed in tqdm(list(zip(prompts, seeds, strict=True)), desc="sample", unit="prompt",
                             disable=not prompts):
        torch.manual_seed(seed)
        new, _ = continue_prompt(model, tok, prompt, gen_cfg, shared)
        out.append(tok.batch_decode(new, skip_special_tokens=True))
    return out


def greedy(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int,
           stop_ids: torch.Tensor | None = None, prefix: SharedPrefix | None = None) -> str:
    """The greedy continuation of ``prompt`` (decoded without specials), stopping at ``stop_ids`` too."""
    model.eval()
    gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                               pad_token_id=tok.pad_token_id, eos_token_id=end_ids(model, stop_ids))
    new, _ = continue_prompt(model, tok, prompt, gen_cfg, prefix)
    return tok.decode(new[0], skip_special_tokens=True)


def beams(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompt: str, num_beams: int, max_new_tokens: int,
          prefix: SharedPrefix | None = None) -> list[tuple[str, float]]:
    """Every one of the ``num_beams`` beam-search continuations of ``prompt`` with its score, lowest score first."""
    model.eval()
    gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                               num_return_sequences=num_beams, pad_token_id=tok.pad_token_id)
    new, scores = continue_prompt(model, tok, prompt, gen_cfg, prefix)
    texts = tok.batch_decode(new, skip_special_tokens=True)
    return sorted(zip(texts, scores.float().cpu().tolist(), strict=True), key=lambda x: x[1])

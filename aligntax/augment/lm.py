"""Causal-LM calls of the augmentation stages: loading, sampling and beams.

``continue_batch`` runs ``model.generate`` on a batch of prompts with every prompt prefilled once
(all but its last token; transformers' own generate prefills each of a prompt's samples or beams
again): the batch's KV cache is repeated over the rows generate decodes (``num_return_sequences``
samples or ``num_beams`` beams per prompt), so its first step runs only the prompts' last tokens.
A ``SharedPrefix`` that the prompts start with (the few-shot shots of every rewrite prompt; the
post that a post's mask_regen prompts share) is prefilled once for all of them: rows hold the
prefix, then left padding, then the rest of their prompt, with positions from the attention mask.
``sample_each`` draws each prompt's samples from a generator seeded for that prompt alone, so a
post's samples depend only on its prompt, its seed and the sample count, never on its chunk, its
batch or the other posts; it decodes with ``aligntax.generation.decode`` (a row that has ended leaves
the batch, so many posts decode together at little waste), beams go through ``continue_batch``.
Prompts are cut with ``aligntax.generation.truncate_text``.
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
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from aligntax.generation import decode, device, grouped_attention, kv_cache
from aligntax.models import drop_decoding_defaults, load_model, load_tokenizer

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
            tok = AutoTokenizer.from_pretrained(name, padding_side="left", trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=False)
        except OSError as err:
            raise RuntimeError(
                f"could not load LM '{name}' ({str(err).splitlines()[0]}); a hub id needs network "
                "access, use 'base' for the prepared base model"
            ) from err
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    drop_decoding_defaults(model.generation_config)  # a model's own sampling defaults would override ours
    return grouped_attention(model.to(device()).eval()), tok


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
        self.cache = kv_cache()
        if len(self.ids):
            model(self.ids[None], past_key_values=self.cache, use_cache=True)

    def shared(self, ids: torch.Tensor) -> int:
        """How many leading tokens of ``ids`` (1-D) equal the prefix's."""
        n = min(len(ids), len(self.ids))
        differ = (ids[:n] != self.ids[:n].to(ids.device)).nonzero()
        return int(differ[0]) if len(differ) else n


@torch.inference_mode()
def prefill(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: Sequence[str], prefix: SharedPrefix | None = None
) -> tuple[torch.Tensor, torch.Tensor, DynamicCache]:
    """(ids, attention mask, KV cache of every row but its last token) of a batch of prompts.

    A row is the prefix tokens every prompt shares (taken from ``prefix``'s cache), left padding,
    then the rest of its prompt (at least its last token); positions count only unmasked tokens,
    as generate's do, so a row is computed as its prompt alone.
    """
    enc = [tok(p, return_tensors="pt")["input_ids"][0].to(model.device) for p in prompts]
    shared = min(min(prefix.shared(ids), len(ids) - 1) for ids in enc) if prefix is not None else 0
    rest = [ids[shared:] for ids in enc]
    width = max(len(r) for r in rest)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.stack([torch.cat([r.new_full((width - len(r),), pad), r]) for r in rest])
    mask = torch.stack([torch.cat([r.new_zeros(width - len(r)), r.new_ones(len(r))]) for r in rest])
    cache = kv_cache()
    if shared:
        cache = copy.deepcopy(prefix.cache)
        cache.crop(shared)
        cache.batch_repeat_interleave(len(prompts))
        ids = torch.cat([prefix.ids[:shared].expand(len(prompts), -1), ids], dim=1)
        mask = torch.cat([mask.new_ones(len(prompts), shared), mask], dim=1)
    if width > 1:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        model(ids[:, shared:-1], attention_mask=mask[:, :-1], position_ids=positions[:, shared:-1],
              past_key_values=cache, use_cache=True)
    return ids, mask, cache


@torch.inference_mode()
def continue_batch(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    gen_cfg: GenerationConfig,
    prefix: SharedPrefix | None = None,
    processors: Sequence[LogitsProcessor] = (),
    copies: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``model.generate`` on ``copies`` rows of each of ``prompts``, each prompt prefilled once (``prefill``): the
    new token ids of every returned row (prompt by prompt) and the beam scores (None without beams).

    The prefilled cache is repeated over every row generate decodes: the copies (samples; transformers'
    greedy path takes no ``num_return_sequences``) and the ``num_beams`` beams it makes of each row itself
    (generate repeats the ids and the mask, not a given cache)."""
    ids, mask, cache = prefill(model, tok, prompts, prefix)
    ids, mask = ids.repeat_interleave(copies, dim=0), mask.repeat_interleave(copies, dim=0)
    cache.batch_repeat_interleave(copies * gen_cfg.num_beams)
    out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, generation_config=gen_cfg,
                         logits_processor=LogitsProcessorList(processors), return_dict_in_generate=True,
                         output_scores=gen_cfg.num_beams > 1)
    return out.sequences[:, ids.shape[1]:], getattr(out, "sequences_scores", None)


class SeededSampling(LogitsProcessor):
    """Samples the next token of each prompt's rows from that prompt's own generator (temperature, top-k 50 and
    top-p as transformers' sampling applies them) and returns scores whose argmax is that sample: under greedy
    decoding a row's samples depend only on its prompt's seed, never on the other rows of the batch.

    ``draw`` is the same draw for ``aligntax.generation.decode``, which drops ended rows from the batch: a prompt's
    generator still draws for all its rows (``torch.multinomial`` of one sample per row draws from the generator
    by the shape of its input alone), so a row's sample is the one it gets when every row runs to the end."""

    def __init__(self, seeds: Sequence[int], rows_per_seed: int, temperature: float, top_p: float,
                 device: torch.device):
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]
        self.rows = rows_per_seed
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopKLogitsWarper(50),
                                            *([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])])

    def _pick(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.multinomial(probs[i * self.rows:(i + 1) * self.rows], 1, generator=g)
                          for i, g in enumerate(self.generators)])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        return torch.full_like(scores, float("-inf")).scatter_(1, self._pick(probs), 0.0)

    def draw(self, scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The sampled token of each of ``rows`` (their indices among all prompts' rows), ``scores`` one row each."""
        probs = torch.softmax(self.warpers(None, scores).float(), dim=-1)
        full = probs.new_full((self.rows * len(self.generators), probs.shape[1]), 1.0)  # rows no longer decoded
        full[rows] = probs
        return self._pick(full)[rows, 0]


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
    batch_size: int = 1,
) -> list[list[str]]:
    """``n`` sampled continuations of each prompt (decoded without specials).

    ``batch_size`` prompts at a time, each prefilled once (``prefix``, the text the prompts start with, once
    per call), their ``n`` samples each decoded together (``aligntax.generation.decode``: an ended row leaves the
    batch, so many prompts decode together at little waste); prompt i's samples come from a generator seeded
    with ``seeds[i]`` (``SeededSampling``), so they depend only on (prompt, seed, n). A row stops at the
    model's end token or at any of ``stop_ids`` (e.g. ``newline_ids``).
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"sample_each: {len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    if n < 1:
        raise ValueError(f"sample_each: n={n}; draw at least one sample per prompt")
    model.eval()
    shared = SharedPrefix(model, tok, prefix) if prefix and prompts else None
    out: list[list[str]] = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for lo in tqdm(range(0, len(prompts), batch_size), desc="sample", unit="batch", disable=not prompts):
        batch, batch_seeds = prompts[lo:lo + batch_size], seeds[lo:lo + batch_size]
        sampler = SeededSampling(batch_seeds, n, temperature, top_p, model.device)
        ids, mask, cache = prefill(model, tok, batch, shared)
        cache.batch_repeat_interleave(n)
        new = decode(model, ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0), cache, sampler.draw,
                     max_new_tokens, end_ids(model, stop_ids), pad)
        texts = tok.batch_decode(new, skip_special_tokens=True)
        out += [texts[i * n:(i + 1) * n] for i in range(len(batch))]
    return out


def beams(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    num_beams: int,
    max_new_tokens: int,
    prefix: SharedPrefix | None = None,
) -> list[list[tuple[str, float]]]:
    """Every one of the ``num_beams`` beam-search continuations of each prompt with its score, lowest first."""
    if not prompts:
        return []
    model.eval()
    gen_cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                               num_return_sequences=num_beams, pad_token_id=tok.pad_token_id)
    new, scores = continue_batch(model, tok, prompts, gen_cfg, prefix)
    texts = tok.batch_decode(new, skip_special_tokens=True)
    rows = list(zip(texts, scores.float().cpu().tolist(), strict=True))
    return [sorted(rows[i * num_beams:(i + 1) * num_beams], key=lambda x: x[1]) for i in range(len(prompts))]

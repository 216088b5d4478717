"""Batched causal-LM generation, once for every package that generates, and how a method decodes.

Callers tokenize their prompts once and pass token ids. ``plan_batches`` is the one batch plan
(longest prompt first, so a batch pads little; ties in input order); ``generate`` runs
transformers' ``generate`` on each batch, left-padded, under ``torch.inference_mode``, with one
tqdm bar over decoding steps, and returns the new token ids of every prompt in input order.

``prefill`` (optional) computes the KV cache of every prompt token but the last; ``generate``
then only decodes, starting with the last prompt token. aligntax/evaluate passes a prefill that
takes the frozen bottom blocks from a store (aligntax/evaluate/bottom.py); without one
transformers prefills the whole prompt itself. After a prefill, plain greedy decoding (no logits
processors, no sampling, no ``stop_ids``) runs ``decode``, this module's own loop: the tokens of
transformers' greedy search, but a row that has ended leaves the batch, so a batch no longer decodes
at full width until its longest row ends (the LM samplers of aligntax/augment use it too).

``Decoding`` is how a method reads its prompt and picks tokens: plain by default; a decoding-time
method (aligntax/baselines/self_debias.py, instructive.py) subclasses it with its prompt prefix,
its logits processors and its teacher-forced scoring, so evaluation and preference scoring need
no branch per method. ``truncate_text`` cuts a text to a token budget before it goes into a
prompt, so one very long post cannot blow up a batch (a 200k-character post once took > 300 s).

``grouped_attention`` switches a CPU model from transformers' sdpa attention, which copies every
key/value head once per query head it serves (with a padding mask, at every decoding step), to the
same torch kernel reading the groups in place: bitwise the same outputs, and SmolLM2's 3 KV heads
for 9 query heads no longer triple the cache's memory traffic (an attention call at 300 cached
tokens: 26 ms -> 8 ms on 2 busy cores).

``kv_cache`` is the KV cache every prefill here starts from: transformers' ``DynamicCache`` grows a
layer's keys and values by concatenation, a copy of the whole cache at every decoding step (a
quarter of a step at 24 rows and 200 cached tokens); ``GrowingCache`` writes each step into spare
room behind them instead. Attention reads the same numbers, so outputs are bitwise the same
(tests/test_generation.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import (
    AttentionInterface,
    AttentionMaskInterface,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.masking_utils import sdpa_mask

Prefill = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Cache]
"""(input_ids, attention_mask, position_ids) of a left-padded batch -> the KV cache of those tokens."""

Logits = Callable[[list[int], list[list[int]]], torch.Tensor]
"""(prompt ids, variant ids) -> logits [sum of variant lengths, vocab] at every position that predicts a
variant token, each variant read right after the prompt (aligntax/evaluate/preference.py)."""


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` that appends into spare room along the sequence instead of concatenating.

    ``keys``/``values`` are views of the first tokens of a larger buffer; an update that fits writes
    behind them. Whatever replaced them with other tensors (transformers' crop, batch selection, beam
    reordering) is seen at the next update, which then copies them into a new buffer once.
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states)
        length, end = self.get_seq_length(), self.get_seq_length() + key_states.shape[-2]
        room = getattr(self, "room", None)
        if room is None or length == 0 or not _views(room[0], self.keys) or end > room[0].shape[-2]:
            size = end + max(64, end // 2)
            room = tuple(s.new_empty(*s.shape[:-2], size, s.shape[-1]) for s in (key_states, value_states))
            if length:
                room[0][..., :length, :] = self.keys
                room[1][..., :length, :] = self.values
            self.room = room
        room[0][..., length:end, :] = key_states
        room[1][..., length:end, :] = value_states
        self.keys, self.values = room[0][..., :end, :], room[1][..., :end, :]
        return self.keys, self.values


def _views(buffer: torch.Tensor, t: torch.Tensor) -> bool:
    """Whether ``t`` is the first tokens of ``buffer`` (same start, batch, heads and strides)."""
    return t.data_ptr() == buffer.data_ptr() and t.shape[:-2] == buffer.shape[:-2] and t.stride() == buffer.stride()


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` of ``GrowingLayer``: ``num_layers`` of them, or one added per layer as it is first updated."""

    def __init__(self, num_layers: int | None = None) -> None:
        if num_layers is None:
            Cache.__init__(self, layer_class_to_replicate=GrowingLayer)
        else:
            Cache.__init__(self, layers=[GrowingLayer() for _ in range(num_layers)])


def kv_cache(config=None) -> DynamicCache:
    """An empty KV cache for a model of ``config``: a ``GrowingCache`` when every layer attends to the whole
    past, transformers' own ``DynamicCache(config=config)`` for sliding-window or chunked layers."""
    if config is None:
        return GrowingCache()
    text = config.get_text_config(decoder=True)
    layer_types = getattr(text, "layer_types", None) or []
    if (getattr(text, "sliding_window", None) or getattr(text, "attention_chunk_size", None)
            or any(t != "full_attention" for t in layer_types)):
        return DynamicCache(config=config)
    return GrowingCache(text.num_hidden_layers)


def device() -> torch.device:
    """Where models run: the current GPU when there is one (under a launcher: this process's GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def truncate_text(tok: PreTrainedTokenizerBase, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens; unchanged (the same string) when it fits."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tok.decode(ids[:max_tokens], skip_special_tokens=True)


GROUPED = "aligntax_sdpa_grouped"
"""The attention implementation ``grouped_attention`` registers with transformers."""


def _sdpa_grouped(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    # transformers' sdpa_attention_forward, with enable_gqa instead of repeat_kv.
    if attention_mask is not None and attention_mask.ndim == 4:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    if is_causal is None:
        is_causal = query.shape[2] > 1 and attention_mask is None and getattr(module, "is_causal", True)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                                           scale=scaling, is_causal=is_causal, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED, _sdpa_grouped)
AttentionMaskInterface.register(GROUPED, sdpa_mask)


def grouped_attention(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` with grouped-query attention read in place when it runs sdpa on the CPU with fewer
    key/value heads than query heads (see the module docstring); unchanged otherwise."""
    cfg = model.config
    heads, kv_heads = getattr(cfg, "num_attention_heads", None), getattr(cfg, "num_key_value_heads", None)
    if model.device.type == "cpu" and cfg._attn_implementation == "sdpa" and kv_heads and heads and kv_heads < heads:
        model.set_attn_implementation(GROUPED)
    return model


@dataclass
class Decoding:
    """How a method decodes: plain greedy on its model, the prompt as built (weight-based methods)."""

    prefix: str = ""
    """Text put before every prompt, in generation and in preference scoring."""

    def processors(self, model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[LogitsProcessor]:
        """Logits processors applied at every decoding step (none: plain greedy)."""
        return []

    def logprobs(self, logits: Logits, tok: PreTrainedTokenizerBase, prompt: list[int],
                 variants: list[list[int]]) -> torch.Tensor:
        """Log-probabilities [positions, vocab] the method decodes from at every variant-predicting
        position; ``logits`` runs the model. A method with processors overrides this with their
        teacher-forced form, so its preferences score the distribution it generates from."""
        return logits(prompt, variants).float().log_softmax(-1)


def plan_batches(lengths: Sequence[int], batch_size: int, longest_first: bool = True) -> list[list[int]]:
    """Indices of the prompts with token counts ``lengths`` in generation batches of ``batch_size``:
    longest first (little padding), ties in input order; in input order when not ``longest_first``."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)) if longest_first else list(range(len(lengths)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of ``prompts`` left-padded to the longest."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch as transformers' ``generate`` computes them (padding: 1)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def end_ids(model: PreTrainedModel, eos_token_id: int | list[int] | None = None) -> list[int]:
    """The tokens that end a row: ``eos_token_id``, else the model's generation config's."""
    eos = eos_token_id if eos_token_id is not None else model.generation_config.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]


class _Progress(StoppingCriteria):
    """Advances a tqdm bar by one decoding step per call; never stops generation."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.bar.update(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _StopAtAny(StoppingCriteria):
    """Stops a row once its continuation (after ``prompt_len``) contains one of ``stop_ids``."""

    def __init__(self, stop_ids: torch.Tensor, prompt_len: int):
        self.stop_ids, self.prompt_len = stop_ids, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.isin(input_ids[:, self.prompt_len:], self.stop_ids).any(dim=1)


Choose = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(scores [rows in the batch, vocab], their indices among all rows) -> the next token of each of those rows."""


def greedy(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row (transformers' greedy search)."""
    return scores.argmax(-1)


@torch.inference_mode()
def decode(
    model: PreTrainedModel,
    ids: torch.Tensor,
    mask: torch.Tensor,
    cache: Cache,
    choose: Choose,
    max_new_tokens: int,
    ends: Sequence[int],
    pad_id: int,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The new token ids of a left-padded batch whose ``cache`` holds every prompt token but the last:
    [rows, steps run], a row's tokens up to and including its end token (one of ``ends``), then ``pad_id``.

    What transformers' ``generate`` returns for such a batch, but a row that has ended leaves the batch
    (once a quarter of the batch has ended, so the cache is not copied at every step): the rows still
    decoding cost less at each step, and a batch no longer runs at full width until its longest row ends.
    ``choose`` picks the next tokens (``greedy``, or a seeded sampler); ``on_step`` is called once a step.
    """
    total = ids.shape[0]
    out = torch.full((total, max_new_tokens), pad_id, dtype=torch.long, device=ids.device)
    rows = torch.arange(total, device=ids.device)  # the batch's rows, as indices into all rows
    live = torch.ones(total, dtype=torch.bool, device=ids.device)  # per batch row: not ended
    ends = torch.tensor(list(ends), dtype=torch.long, device=ids.device)
    token, mask, steps = ids[:, -1:], mask.clone(), 0
    while steps < max_new_tokens and live.any():
        position = mask.sum(-1, keepdim=True) - 1
        logits = model(token, attention_mask=mask, position_ids=position, past_key_values=cache,
                       use_cache=True).logits[:, -1].float()
        picks = choose(logits[live], rows[live])
        out[rows[live], steps] = picks
        steps += 1
        if on_step is not None:
            on_step()
        token = torch.full_like(rows, pad_id)
        token[live] = picks
        live[live.clone()] = ~torch.isin(picks, ends)
        if (~live).sum() * 4 >= len(rows) and live.any():
            keep = live.nonzero()[:, 0]
            cache.batch_select_indices(keep)
            rows, mask, token, live = rows[keep], mask[keep], token[keep], live[keep]
        token = token[:, None]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
    return out[:, :steps]


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int,
    *,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | list[int] | None = None,
    stop_ids: torch.Tensor | None = None,
    logits_processors: Sequence[LogitsProcessor] | None = None,
    longest_first: bool = True,
    prefill: Prefill | None = None,
) -> list[list[int]]:
    """The new token ids of each prompt (token ids; greedy, or sampled when ``sample``), in input order.

    Batches follow ``plan_batches``. ``seed``: ``torch.manual_seed(seed * 100_003 + batch index)``
    before each batch, so sampled text depends only on the prompts and the seed. ``eos_token_id``:
    the tokens that end a row (None: the model's). ``stop_ids``: also stop a row once it generated
    any of these tokens (kept in the ids). Rows that stop early are padded with the pad token.
    ``prefill``: computes the cache of all prompt tokens but the last (see the module docstring).
    """
    if tok.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; load it with aligntax.models.load_tokenizer")
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1, pad_token_id=tok.pad_token_id,
        eos_token_id=eos_token_id, **(dict(temperature=temperature, top_p=top_p) if sample else {}),
    )
    processors = LogitsProcessorList(logits_processors or [])
    batches = plan_batches([len(p) for p in prompts], batch_size, longest_first)
    results: list[list[int]] = [[] for _ in prompts]
    model.eval()
    # One bar over decoding steps (a single batch is common, so a bar over batches says nothing).
    with tqdm(total=len(batches) * max_new_tokens, desc="generate", unit="step", disable=not prompts) as bar:
        for b, batch in enumerate(batches):
            ids, mask = left_pad([prompts[i] for i in batch], tok.pad_token_id)
            ids, mask = ids.to(model.device), mask.to(model.device)
            extra = {}
            if prefill is not None and ids.shape[1] > 1:
                extra["past_key_values"] = prefill(ids[:, :-1], mask[:, :-1], positions(mask)[:, :-1])
            if "past_key_values" in extra and not sample and not processors and stop_ids is None:
                new = decode(model, ids, mask, extra["past_key_values"], greedy, max_new_tokens,
                             end_ids(model, eos_token_id), tok.pad_token_id, lambda: bar.update(1))
                for i, row in zip(batch, new.tolist(), strict=True):
                    results[i] = row
                continue
            stops: list[StoppingCriteria] = [_Progress(bar)]
            if stop_ids is not None:
                stops.append(_StopAtAny(stop_ids.to(model.device), ids.shape[1]))
            if seed is not None:
                torch.manual_seed(seed * 100_003 + b)
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                 logits_processor=processors, stopping_criteria=StoppingCriteriaList(stops), **extra)
            for i, new in zip(batch, out[:, ids.shape[1]:].tolist(), strict=True):
                results[i] = new
    return results


def generate_ids(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: Sequence[str], max_new_tokens: int,
                 batch_size: int, **kwargs) -> list[list[int]]:
    """``generate`` on prompt texts (tokenized here once): the entry of callers that hold texts
    (aligntax/augment/lm.py); keyword arguments as ``generate``."""
    ids = tok(list(prompts))["input_ids"] if prompts else []
    return generate(model, tok, ids, max_new_tokens, batch_size, **kwargs)

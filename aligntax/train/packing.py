"""Token-level examples and the two batch layouts: naive (one row per variant) and packed.

An encoded example holds the prompt ids once and, per summary variant, its ids (" " + text +
eos), the mask of the tokens its representation pools over (tokens inside entity spans, else
all text tokens) and whether it is a positive. Variant 0 is always the reference summary, the
only one trained with CE.

Packed layout: one row per post = prompt, then every variant; a 4-D block mask lets a variant
see the prompt and itself only, and position ids restart after the prompt, so each variant is
computed exactly as if it followed the prompt alone (the naive layout).

Given a ``FrozenStore`` (``aligntax.train.frozen``) the collators add the frozen bottom's states
of each row (``frozen_states``, ``frozen_split``), assembled from its pieces: the prompt, then
each summary read behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from transformers import PreTrainedTokenizerBase

from aligntax.models import build_prompt


@dataclass
class Variant:
    text: str
    """Summary text (the reference, a paraphrase or a negative)."""
    positive: bool
    """True for faithful clean summaries (the reference and its paraphrases)."""
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Character spans (start, end) inside ``text`` whose tokens are pooled (entities, or content words)."""
    pool: str = "entity"
    """What ``spans`` hold: `entity` (NER spans) or `content` (nouns and numbers of an entity-less text)."""


@dataclass
class Encoded:
    prompt: list[int]
    """Prompt token ids (with the tokenizer's special prefix, if any)."""
    variants: list[list[int]]
    """Per variant: ids of " " + text, then eos. Variant 0 is the reference."""
    pool: list[list[bool]]
    """Per variant: which of its tokens the representation pools over (eos never)."""
    positive: list[bool]
    """Per variant: positive (True) or negative."""
    weight: float = 1.0
    """w of this post's contrastive term."""
    contrastive: bool = False
    """Whether the post has a valid group (>= 2 positives, >= 1 negative)."""


def prompt_ids(tok: PreTrainedTokenizerBase, template: str, post: str, max_tokens: int) -> tuple[list[int], bool]:
    """Ids of the prompt for ``post``, cutting the post (not the template) to fit ``max_tokens``."""
    ids = tok(build_prompt(template, post)).input_ids
    if len(ids) <= max_tokens:
        return ids, False
    post_ids = tok(post, add_special_tokens=False).input_ids
    keep = len(post_ids) - (len(ids) - max_tokens)
    while keep > 0:
        ids = tok(build_prompt(template, tok.decode(post_ids[:keep]))).input_ids
        if len(ids) <= max_tokens:
            return ids, True
        keep -= max(1, len(ids) - max_tokens)
    raise ValueError(f"train.max_prompt_tokens={max_tokens} cannot hold even the prompt template; raise it")


def variant_ids(
    tok: PreTrainedTokenizerBase, variant: Variant, max_tokens: int
) -> tuple[list[int], list[bool], bool, bool]:
    """(ids of " " + text + eos, pool mask, truncated, fell back) with <= ``max_tokens`` text tokens.

    A token is in the pool when its character span overlaps one of ``variant.spans``; with no such
    token (no span, or all cut off) every text token is pooled.
    """
    enc = tok(" " + variant.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc.input_ids[:max_tokens], enc.offset_mapping[:max_tokens]
    truncated = len(enc.input_ids) > max_tokens
    spans = [(s + 1, e + 1) for s, e in variant.spans]
    pool = [any(ts < e and te > s for s, e in spans) for ts, te in offsets]
    fallback = not any(pool)
    if fallback:
        pool = [True] * len(ids)
    return ids + [tok.eos_token_id], pool + [False], truncated, fallback


def encode(
    tok: PreTrainedTokenizerBase,
    template: str,
    post: str,
    variants: Sequence[Variant],
    max_prompt_tokens: int,
    max_summary_tokens: int,
    weight: float = 1.0,
    contrastive: bool = False,
) -> tuple[Encoded, dict[str, int]]:
    """Encode one post; returns the example and counts: prompt/variants truncated and, per variant of a
    contrastive post, what it pools over (pool_entity, pool_content, or every token: pool_fallback)."""
    if not tok.is_fast:
        raise ValueError("the trainer needs a fast tokenizer (character offsets map entity spans to tokens)")
    prompt, cut_prompt = prompt_ids(tok, template, post, max_prompt_tokens)
    counts = {"prompt_truncated": int(cut_prompt), "variant_truncated": 0, "pool_entity": 0, "pool_content": 0,
              "pool_fallback": 0}
    ex = Encoded(prompt=prompt, variants=[], pool=[], positive=[], weight=weight, contrastive=contrastive)
    for v in variants:
        ids, pool, cut, fallback = variant_ids(tok, v, max_summary_tokens)
        counts["variant_truncated"] += int(cut)
        if contrastive:  # only a contrastive post pools its variants
            counts["pool_fallback" if fallback else f"pool_{v.pool}"] += 1
        ex.variants.append(ids)
        ex.pool.append(pool)
        ex.positive.append(v.positive)
    return ex, counts


class RowStates(Protocol):
    """What the collators need of ``aligntax.train.frozen.FrozenStore``."""

    split: int

    def row_states(self, rows: Sequence[Sequence[tuple[Sequence[int], Sequence[int]]]], width: int) -> torch.Tensor:
        """[rows, width, hidden]: the states of each row's pieces (context, ids), in order."""
        ...


def pieces(ex: Encoded) -> tuple[list[int], list[list[int]]]:
    """(prompt, the variants read behind it) of an example: what its rows are made of."""
    return ex.prompt, ex.variants


def collate(
    examples: Sequence[Encoded], packed: bool, pad_id: int, contrastive: bool = True,
    pool_position: Literal["at", "predicts"] = "at", frozen: RowStates | None = None,
) -> dict[str, torch.Tensor]:
    """Batch tensors for either layout; flat indices address rows * seq_len positions.

    ce_index/ce_labels: hidden positions that predict the reference tokens and their targets.
    pool_index/pool_owner: hidden positions pooled into each contrastive variant: the position of
    each pooled token (``at``), or the one that predicts it (``predicts``: one to the left; for a
    variant's first token the last prompt token, which every variant reads).
    var_group/var_positive: per pooled variant, its post (0..G-1) and role; group_weight: w per post.
    Non-contrastive posts (or ``contrastive=False``) contribute their reference to CE only.
    """
    rows: list[list[int]] = []
    positions: list[list[int]] = []
    segments: list[list[int]] = []
    row_pieces: list[list[tuple[list[int], list[int]]]] = []
    ce_index, ce_labels, pool_index, pool_owner = [], [], [], []
    var_group, var_positive, weights = [], [], []
    starts: list[tuple[int, int]] = []  # (row, offset) of each pending variant, filled below
    for ex in examples:
        use_cl = contrastive and ex.contrastive
        n_var = len(ex.variants) if use_cl else 1
        if use_cl:
            weights.append(ex.weight)
        p = len(ex.prompt)
        starts.clear()
        if packed:
            row, pos, seg = list(ex.prompt), list(range(p)), [0] * p
            for i in range(n_var):
                starts.append((len(rows), len(row)))
                row += ex.variants[i]
                pos += range(p, p + len(ex.variants[i]))
                seg += [i + 1] * len(ex.variants[i])
            rows.append(row), positions.append(pos), segments.append(seg)
            row_pieces.append([([], ex.prompt)] + [(ex.prompt, ex.variants[i]) for i in range(n_var)])
        else:
            for i in range(n_var):
                starts.append((len(rows), p))
                rows.append(ex.prompt + ex.variants[i])
                positions.append(list(range(p + len(ex.variants[i]))))
                segments.append([1] * (p + len(ex.variants[i])))
                row_pieces.append([([], ex.prompt), (ex.prompt, ex.variants[i])])
        for i, (r, off) in enumerate(starts):
            ids = ex.variants[i]
            if i == 0:
                # Position t predicts token t+1: the last prompt token predicts the first summary token.
                ce_index.append((r, off - 1))
                ce_index += [(r, off + k) for k in range(len(ids) - 1)]
                ce_labels += ids
            if use_cl:
                owner = len(var_group)
                pooled = [k for k, m in enumerate(ex.pool[i]) if m]
                if pool_position == "at":
                    hits = [(r, off + k) for k in pooled]
                else:  # the state predicting token k: one to the left, the last prompt token for k = 0
                    hits = [(r, off + k - 1 if k else p - 1) for k in pooled]
                pool_index += hits
                pool_owner += [owner] * len(hits)
                var_group.append(len(weights) - 1)
                var_positive.append(ex.positive[i])
    width = max(len(r) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)
    for i, (r, pos, s) in enumerate(zip(rows, positions, segments, strict=True)):
        input_ids[i, : len(r)] = torch.tensor(r)
        position_ids[i, : len(r)] = torch.tensor(pos)
        seg[i, : len(r)] = torch.tensor(s)
    flat = lambda pairs: torch.tensor([r * width + c for r, c in pairs], dtype=torch.long)  # noqa: E731
    batch = {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": block_mask(seg) if packed else (seg >= 0).long(),
        "ce_index": flat(ce_index),
        "ce_labels": torch.tensor(ce_labels, dtype=torch.long),
        "pool_index": flat(pool_index),
        "pool_owner": torch.tensor(pool_owner, dtype=torch.long),
        "var_group": torch.tensor(var_group, dtype=torch.long),
        "var_positive": torch.tensor(var_positive, dtype=torch.bool),
        "group_weight": torch.tensor(weights, dtype=torch.float32),
    }
    if frozen is not None:
        batch["frozen_states"] = frozen.row_states(row_pieces, width)
        batch["frozen_split"] = torch.tensor(frozen.split)
    return batch


def block_mask(seg: torch.Tensor) -> torch.Tensor:
    """Boolean [R, 1, T, T] mask (True = may attend) from segment ids [R, T].

    Segment 0 is the shared prompt, 1.. the variants, -1 padding. A query attends causally to
    the prompt and to its own segment; a padding query attends to itself only (no empty row).
    """
    t = seg.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    q, k = seg[:, :, None], seg[:, None, :]
    allowed = causal & (k >= 0) & ((k == 0) | (k == q)) & (q >= 0)
    allowed |= torch.eye(t, dtype=torch.bool)
    return allowed[:, None]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean 4-D mask as the additive float mask every attention backend accepts."""
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~mask, torch.finfo(dtype).min)

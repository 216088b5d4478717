"""Unlikelihood training (Welleck et al. 2020): MLE on the reference, unlikelihood on the negatives.

loss = CE(reference tokens) + alpha * mean_t -log(1 - p(y_t | prompt, y_<t)) over the tokens of
the post's toxic and unfaithful negatives (groups artifact). By default only the negative tokens
that do not occur in the reference are pushed down (a swapped entity, an insult), so the
words the negative shares with the faithful summary are not unlearned. Trained from `base`
with the same trainer settings and budget as `sft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from aligntax.baselines.negatives import NEGATIVE_KINDS
from aligntax.config import check


@dataclass
class UnlikelihoodConfig:
    alpha: float = 1.0
    """Weight of the unlikelihood term against the CE on the reference."""
    negative_kinds: list[str] = field(default_factory=lambda: list(NEGATIVE_KINDS))
    """Kinds of negatives of the groups artifact used (toxic_lm, toxic_lexicon, swap_ent, mask_regen, sys_lowcon)."""
    max_negatives_per_post: int = 2
    """Negatives per post (a seeded sample); each costs one more sequence in the step."""
    novel_tokens_only: bool = True
    """Push down only negative tokens absent from the reference (false: every negative token but eos)."""

    def __post_init__(self) -> None:
        check(self.alpha >= 0, "unlikelihood.alpha", "a number >= 0")
        check(len(self.negative_kinds) > 0 and set(self.negative_kinds) <= set(NEGATIVE_KINDS),
              "unlikelihood.negative_kinds", f"a non-empty subset of {list(NEGATIVE_KINDS)}")
        check(self.max_negatives_per_post >= 1, "unlikelihood.max_negatives_per_post", "an integer >= 1")


@dataclass
class UlExample:
    prompt: list[int]
    """Prompt token ids."""
    reference: list[int]
    """Ids of " " + reference + eos (the MLE target)."""
    negatives: list[list[int]] = field(default_factory=list)
    """Ids of " " + negative + eos, one list per negative."""
    penalised: list[list[bool]] = field(default_factory=list)
    """Per negative: which of its tokens get the unlikelihood term."""


def penalised_tokens(negative: Sequence[int], reference: Sequence[int], eos_id: int, novel_only: bool) -> list[bool]:
    """Mask of the negative's tokens to push down: never eos; with ``novel_only`` only those not in the reference."""
    ref = set(reference)
    return [t != eos_id and (not novel_only or t not in ref) for t in negative]


def unlikelihood_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -log(1 - p(target)) over rows of ``logits`` [N, V]; log(1 - p) computed stably."""
    if targets.numel() == 0:
        return logits.sum() * 0.0
    logits = logits.float()
    log_all = torch.logsumexp(logits, dim=-1)
    others = logits.scatter(-1, targets[:, None], float("-inf"))
    log_rest = torch.logsumexp(others, dim=-1)
    return -(log_rest - log_all).mean()


def collate_ul(examples: Sequence[UlExample], pad_id: int) -> dict[str, torch.Tensor]:
    """One right-padded row per (prompt + reference) and per (prompt + negative).

    ce_index/ce_labels: flat positions that predict reference tokens and their targets;
    ul_index/ul_labels: flat positions that predict penalised negative tokens and their targets.
    """
    rows, ce, ul = [], [], []
    for ex in examples:
        p = len(ex.prompt)
        seqs = [(ex.reference, [True] * len(ex.reference), ce)]
        seqs += [(neg, pen, ul) for neg, pen in zip(ex.negatives, ex.penalised, strict=True)]
        for ids, mask, sink in seqs:
            r = len(rows)
            rows.append(ex.prompt + ids)
            sink += [((r, p - 1 + k), t) for k, (t, m) in enumerate(zip(ids, mask, strict=True)) if m]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r)
        attention_mask[i, : len(r)] = 1

    def flat(pairs):
        return (torch.tensor([r * width + c for (r, c), _ in pairs], dtype=torch.long),
                torch.tensor([t for _, t in pairs], dtype=torch.long))

    ce_index, ce_labels = flat(ce)
    ul_index, ul_labels = flat(ul)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "ce_index": ce_index,
            "ce_labels": ce_labels, "ul_index": ul_index, "ul_labels": ul_labels}


def ul_objective(model: torch.nn.Module, batch: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """loss = CE(reference) + alpha * UL(negatives); returns loss, ce and ul (the last two detached)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    flat = logits.reshape(-1, logits.shape[-1])
    ce = F.cross_entropy(flat[batch["ce_index"]].float(), batch["ce_labels"])
    ul = unlikelihood_loss(flat[batch["ul_index"]], batch["ul_labels"])
    return {"loss": ce + alpha * ul, "ce": ce.detach(), "ul": ul.detach()}

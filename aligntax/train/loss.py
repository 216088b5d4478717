"""The contrastive objective: CE + alpha * w * InfoNCE, its head, pooling and config.

Pure tensor functions, so they test without a language model:
``ContrastiveHead`` maps last-layer hidden states to unit vectors, ``pool_variants`` turns the
head outputs of each variant's (entity) tokens into one representation, ``info_nce`` is CLIFF's
loss for one post, ``group_weight`` is w.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from aligntax.config import check
from aligntax.schema import NEGATIVE_KINDS


@dataclass
class LossConfig:
    scale: Literal["none", "static", "dynamic"] = "none"
    """Weight w of the contrastive term: 1 (none), `static_weight` (static) or from toxicity (dynamic)."""
    alpha: float = 16.0
    """Multiplier of the contrastive term (paper: 16)."""
    temperature: float = 1.0
    """InfoNCE temperature tau (paper's released code silently used 1.0)."""
    static_weight: float = 1.5
    """w when scale is static (paper: 1.5)."""
    dynamic_gain: float = 1.0
    """Dynamic w = 1 + dynamic_gain * (max toxicity over the post's variants): 1 for a clean group."""
    entity_pooling: bool = True
    """Pool over the summary tokens inside entity spans (CLIFF); false pools over all summary tokens."""
    pool_fallback: Literal["content", "all"] = "content"
    """A variant with no entity: pool over its nouns, proper nouns and numbers (`content`, ours; spaCy
    POS tags), or over all its tokens (`all`); a text with neither pools over all its tokens."""
    pool_position: Literal["at", "predicts"] = "at"
    """Pool the state at each pooled token (`at`, the paper's code) or the one predicting it, one to
    the left (`predicts`, CLIFF's decoder; the first summary token's is the last prompt token)."""
    negatives: list[str] = field(default_factory=lambda: list(NEGATIVE_KINDS))
    """Kinds of negatives of the groups artifact the contrastive term uses (a post left without one
    trains with CE only, counted as posts_negatives_excluded)."""

    def __post_init__(self) -> None:
        check(len(self.negatives) > 0 and set(self.negatives) <= set(NEGATIVE_KINDS)
              and len(set(self.negatives)) == len(self.negatives), "loss.negatives",
              f"a non-empty list without repeats of {', '.join(NEGATIVE_KINDS)}, e.g. "
              "-S 'loss.negatives=[swap_ent,mask_regen,sys_lowcon]'")
        check(self.alpha >= 0, "loss.alpha", "a number >= 0")
        check(self.temperature > 0, "loss.temperature", "a number > 0")
        check(self.static_weight >= 0, "loss.static_weight", "a number >= 0")
        check(self.dynamic_gain >= 0, "loss.dynamic_gain", "a number >= 0")


class ContrastiveHead(nn.Module):
    """Linear(H->H) -> GELU -> Linear(H->H) -> L2 normalisation (CLIFF's projection head)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(hidden), dim=-1)


def pool_variants(head_out: torch.Tensor, owner: torch.Tensor, n_variants: int) -> torch.Tensor:
    """Mean of ``head_out`` rows per variant, L2-normalised: [n_variants, H].

    ``head_out`` [N, H] holds the head outputs of the pooled tokens of all variants and
    ``owner`` [N] the variant each row belongs to; every variant must own at least one row
    (the collator falls back to all summary tokens when a variant has no entity token).
    """
    sums = head_out.new_zeros(n_variants, head_out.shape[-1]).index_add(0, owner, head_out)
    counts = torch.bincount(owner, minlength=n_variants).clamp_min(1).to(head_out.dtype)
    return F.normalize(sums / counts[:, None], dim=-1)


def info_nce(reps: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLIFF's InfoNCE for one post.

    For every ordered pair (i, j) of distinct positives: -log(exp(s_ij/tau) / sum_{k!=i} exp(s_ik/tau))
    with s = r.r and k over all other variants (positives and negatives) of the post; mean over pairs.
    ``reps`` [V, H] unit vectors, ``positive`` [V] bool with at least 2 True.
    """
    n_pos = int(positive.sum())
    if n_pos < 2:
        raise ValueError(f"info_nce needs at least 2 positives, got {n_pos}")
    sim = reps @ reps.T / temperature
    eye = torch.eye(len(reps), dtype=torch.bool, device=reps.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    pairs = positive[:, None] & positive[None, :] & ~eye
    return -log_prob[pairs].mean()


def group_weight(toxicity: Sequence[float], cfg: LossConfig) -> float:
    """w for one post: 1 (none), static_weight (static) or 1 + gain * max toxicity (dynamic).

    Continuous and monotone in every variant's toxicity; NaN scores are ignored (a group with
    no score at all counts as clean).
    """
    if cfg.scale == "none":
        return 1.0
    if cfg.scale == "static":
        return cfg.static_weight
    scores = [min(max(float(t), 0.0), 1.0) for t in toxicity if t is not None and not math.isnan(float(t))]
    return 1.0 + cfg.dynamic_gain * (max(scores) if scores else 0.0)

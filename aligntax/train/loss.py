"""The contrastive objective: CE + alpha * w * InfoNCE, and its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aligntax.config import check


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

    def __post_init__(self) -> None:
        check(self.alpha >= 0, "loss.alpha", "a number >= 0")
        check(self.temperature > 0, "loss.temperature", "a number > 0")
        check(self.static_weight >= 0, "loss.static_weight", "a number >= 0")

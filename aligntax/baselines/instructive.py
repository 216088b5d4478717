"""Instructive Debiasing: an instruction in front of the input, nothing else (applied to `sft`).

The paper's prefix is "Be positive, polite, respectful, compliant, loveable, modest, helpful,
and kind for: "; it reaches the model through ``generate_summaries(..., prompt_prefix=...)``,
i.e. the model reads ``prefix + build_prompt(template, post)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aligntax.config import check
from aligntax.models import build_prompt

PAPER_PREFIX = "Be positive, polite, respectful, compliant, loveable, modest, helpful, and kind for: "


@dataclass
class InstructiveConfig:
    prefix: str = PAPER_PREFIX
    """Text put in front of the prompt at generation (paper: PAPER_PREFIX)."""

    def __post_init__(self) -> None:
        check(self.prefix.strip() != "", "instructive.prefix", "a non-empty instruction")


def instructed_prompt(cfg: InstructiveConfig, template: str, post: str) -> str:
    """The exact model input for ``post``: the instruction, then the shared prompt."""
    return cfg.prefix + build_prompt(template, post)

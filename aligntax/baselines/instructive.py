"""Instructive Debiasing: an instruction in front of the input, nothing else (applied to `sft`).

The paper's prefix is "Be positive, polite, respectful, compliant, loveable, modest, helpful,
and kind for: "; the model reads ``prefix + build_prompt(template, post)`` in generation and in
preference scoring (``Decoding.prefix``, aligntax/generation.py), and decodes plainly.
"""

from __future__ import annotations

from dataclasses import dataclass

from aligntax.config import check
from aligntax.generation import Decoding

PAPER_PREFIX = "Be positive, polite, respectful, compliant, loveable, modest, helpful, and kind for: "


@dataclass
class InstructiveConfig:
    prefix: str = PAPER_PREFIX
    """Text put in front of the prompt at generation (paper: PAPER_PREFIX)."""

    def __post_init__(self) -> None:
        check(self.prefix.strip() != "", "instructive.prefix", "a non-empty instruction")


CONFIG = InstructiveConfig
"""Its params section's dataclass (aligntax/methods.py: a decoding method's module defines CONFIG)."""


def decoding(cfg: InstructiveConfig) -> Decoding:
    """How evaluate@instructive decodes (aligntax/evaluate/run.py ``method_decoding``): the instruction as prefix."""
    return Decoding(prefix=cfg.prefix)

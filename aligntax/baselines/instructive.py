"""Instructive Debiasing: an instruction in front of the input, nothing else (applied to `sft`).

The paper's prefix is "Be positive, polite, respectful, compliant, loveable, modest, helpful,
and kind for: "; it reaches the model through ``generate(..., prompt_prefix=...)``,
i.e. the model reads ``prefix + build_prompt(template, post)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligntax.config import check, load_section
from aligntax.models import build_prompt

PAPER_PREFIX = "Be positive, polite, respectful, compliant, loveable, modest, helpful, and kind for: "


@dataclass
class InstructiveConfig:
    prefix: str = PAPER_PREFIX
    """Text put in front of the prompt at generation (paper: PAPER_PREFIX)."""

    def __post_init__(self) -> None:
        check(self.prefix.strip() != "", "instructive.prefix", "a non-empty instruction")


CONFIG = InstructiveConfig
"""Its params section's dataclass (aligntax/methods.py: a decoding method's module defines CONFIG)."""


def instructed_prompt(cfg: InstructiveConfig, template: str, post: str) -> str:
    """The exact model input for ``post``: the instruction, then the shared prompt."""
    return cfg.prefix + build_prompt(template, post)


def decoding(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, params: dict
) -> tuple[PreTrainedModel, None, str]:
    """``decoding_setup`` for instructive: the model unchanged, no processor, the instruction as prefix."""
    return model, None, load_section(params, "instructive", InstructiveConfig).prefix

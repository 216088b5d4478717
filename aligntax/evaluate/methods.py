"""How each method decodes: the one seam decoding-time baselines extend.

``decoding_setup`` returns (model to generate with, logits processors, prompt prefix). Methods
whose change lives in the weights (base, sft, contrastive and every trained baseline) decode
unchanged, so they need no branch. A decoding-time method adds an explicit branch, e.g.
``if method == "instructive": return model, None, cfg.prefix`` with ``cfg`` read from its own
params section.
"""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase


def decoding_setup(
    method: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, params: dict[str, Any]
) -> tuple[PreTrainedModel, list[LogitsProcessor] | None, str]:
    """(model, logits_processors, prompt_prefix) that ``method`` generates with."""
    return model, None, ""

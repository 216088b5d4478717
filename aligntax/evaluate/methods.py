"""How each method decodes: the one seam decoding-time baselines extend.

``decoding_setup`` returns (model to generate with, logits processors, prompt prefix). Methods
whose change lives in the weights (base, sft, contrastive and every trained baseline) decode
unchanged, so they need no branch; so do inlp and sentence_debias, whose fit stages save `sft`
with the projection folded into its LM head. A decoding-time method adds an explicit branch that
reads its own params section: self_debias (a LogitsProcessor) and instructive (a prompt prefix).
"""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from aligntax.baselines import instructive, self_debias


def decoding_setup(
    method: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, params: dict[str, Any]
) -> tuple[PreTrainedModel, list[LogitsProcessor] | None, str]:
    """(model, logits_processors, prompt_prefix) that ``method`` generates with."""
    if method == "self_debias":
        return self_debias.decoding(model, tokenizer, params)
    if method == "instructive":
        return instructive.decoding(model, tokenizer, params)
    return model, None, ""

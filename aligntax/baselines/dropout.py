"""Dropout debiasing (Webster et al. 2020): SFT with increased attention and hidden dropout.

Webster et al. raise BERT's attention dropout to 0.15 and hidden dropout to 0.20 during further
training; here the same SFT run as `sft` trains with those rates. GPT-2-style configs have both
knobs (``attn_pdrop``, ``resid_pdrop``); Llama-style configs only have ``attention_dropout``, so
hidden dropout is added as forward hooks on the attention and MLP outputs (before the residual
add, where GPT-2 and BERT apply it) of the blocks that train. Webster et al. train every layer of
a model pretrained with dropout; SmolLM2 was pretrained without it, and 20% hidden dropout in the
frozen blocks of the default run (top 2 of 30 train) lifts the training CE from 3.7 to 9.7 nats,
noise the frozen layers cannot adapt to (trained blocks only, with attention 0.15: 6.1). Hooks act
only in training mode and are not saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from aligntax.config import check
from aligntax.train.core import Job, TrainInputs
from aligntax.train.objective import decoder_blocks
from aligntax.train.sft import sft_job
from aligntax.train.trainer import trained_blocks

log = logging.getLogger(__name__)

ATTENTION_KEYS = ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")
HIDDEN_KEYS = ("resid_pdrop", "hidden_dropout_prob", "hidden_dropout")


@dataclass
class DropoutConfig:
    attention: float = 0.15
    """Dropout on attention probabilities (Webster et al.: 0.15)."""
    hidden: float = 0.20
    """Dropout on each block's attention and MLP outputs (Webster et al.: 0.20)."""

    def __post_init__(self) -> None:
        check(0 <= self.attention < 1, "dropout.attention", "a number in [0, 1)")
        check(0 <= self.hidden < 1, "dropout.hidden", "a number in [0, 1)")


CONFIG = DropoutConfig
NEEDS_GROUPS = False


def dropout_overrides(config: PretrainedConfig, cfg: DropoutConfig) -> tuple[dict[str, float], bool]:
    """Config attributes to set at load, and whether hidden dropout still needs hooks."""
    keys = config.to_dict()
    overrides = {k: cfg.attention for k in ATTENTION_KEYS if k in keys}
    hidden = [k for k in HIDDEN_KEYS if k in keys]
    overrides |= {k: cfg.hidden for k in hidden}
    if not overrides and cfg.attention > 0:
        raise ValueError(f"dropout: {config.model_type} config has no attention-dropout setting "
                         f"(looked for {', '.join(ATTENTION_KEYS)})")
    return overrides, not hidden and cfg.hidden > 0


def add_hidden_dropout(
    model: PreTrainedModel, p: float, blocks: range | None = None
) -> list[torch.utils.hooks.RemovableHandle]:
    """Dropout on the output of the ``self_attn`` and ``mlp`` of each block in ``blocks`` (default all)."""
    layers = decoder_blocks(model)
    if not all(hasattr(b, "self_attn") and hasattr(b, "mlp") for b in layers):
        raise ValueError(f"dropout: cannot find self_attn/mlp blocks in {type(model).__name__} "
                         "to add hidden dropout; set dropout.hidden: 0")

    def hook(module, _args, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, training=True),) + output[1:]
        return F.dropout(output, p, training=True)

    chosen = [layers[i] for i in (blocks if blocks is not None else range(len(layers)))]
    return [sub.register_forward_hook(hook) for block in chosen for sub in (block.self_attn, block.mlp)]


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, cfg: DropoutConfig) -> Job:
    """`sft` (same data, trainer and budget) with the raised dropout: config at load, hooks if needed."""
    overrides, hooks = dropout_overrides(AutoConfig.from_pretrained(inputs.base_dir, trust_remote_code=False), cfg)

    def setup(model: PreTrainedModel) -> dict:
        blocks = trained_blocks(model.config.num_hidden_layers, inputs.train)
        handles = add_hidden_dropout(model, cfg.hidden, blocks) if hooks else []
        log.info("dropout: config %s, hidden-dropout hooks on %d modules", overrides, len(handles))
        return {"config_overrides": overrides, "hidden_dropout_hooks": len(handles)}

    job = sft_job(tok, inputs.raw[["post", "summary"]], inputs)
    job.model_overrides, job.setup_model = overrides, setup
    return job

"""One forward pass of the training objective on a collated batch (either layout).

Only the positions that predict reference tokens go through the LM head (the negatives and
paraphrases need no logits), which is most of what makes the packed step cheap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from aligntax.train.loss import ContrastiveHead, LossConfig, info_nce, pool_variants
from aligntax.train.packing import additive_mask

HEAD_NAME = "contrastive_head"
"""Attribute name of the contrastive head on the trained model."""


def unwrap(model: nn.Module) -> PreTrainedModel:
    """The causal LM inside a peft / accelerate wrapper."""
    while hasattr(model, "module") and not isinstance(model, PreTrainedModel):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def decoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(decoder stack returning last hidden states, output embedding) of a causal LM."""
    lm = unwrap(model)
    return getattr(lm, lm.base_model_prefix), lm.get_output_embeddings()


def attach_head(model: PreTrainedModel) -> ContrastiveHead:
    """Give ``model`` a contrastive head (kept across checkpoints as a submodule)."""
    head = ContrastiveHead(model.config.hidden_size).to(dtype=model.dtype, device=model.device)
    model.add_module(HEAD_NAME, head)
    return head


def compute_objective(
    model: nn.Module, batch: dict[str, torch.Tensor], loss_cfg: LossConfig | None
) -> dict[str, torch.Tensor]:
    """loss = CE(reference) + alpha * mean_post(w * InfoNCE); returns loss, ce, l_cl, w (detached parts).

    ``loss_cfg`` None (or a batch with no contrastive post) gives CE only.
    """
    decoder, lm_head = decoder_and_head(model)
    mask = batch["attention_mask"]
    param = next(decoder.parameters())
    if mask.dim() == 4:
        mask = additive_mask(mask, param.dtype)
    hidden = decoder(
        input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"], use_cache=False
    ).last_hidden_state
    flat = hidden.reshape(-1, hidden.shape[-1])
    logits = lm_head(flat[batch["ce_index"]]).float()
    ce = F.cross_entropy(logits, batch["ce_labels"])
    zero = ce.new_zeros(())
    out = {"ce": ce.detach(), "l_cl": zero, "w": zero}
    n_groups = len(batch["group_weight"])
    if loss_cfg is None or n_groups == 0:
        out["loss"] = ce
        return out
    head = getattr(unwrap(model), HEAD_NAME)
    z = head(flat[batch["pool_index"]]).float()
    reps = pool_variants(z, batch["pool_owner"], len(batch["var_group"]))
    losses = torch.stack([
        info_nce(reps[batch["var_group"] == g], batch["var_positive"][batch["var_group"] == g], loss_cfg.temperature)
        for g in range(n_groups)
    ])
    w = batch["group_weight"].to(losses)
    out["loss"] = ce + loss_cfg.alpha * (w * losses).mean()
    out["l_cl"] = losses.mean().detach()
    out["w"] = w.mean()
    return out

"""One forward pass of the training objective on a collated batch (either layout).

Only the positions that predict reference tokens go through the LM head (the negatives and
paraphrases need no logits), which is most of what makes the packed step cheap. A batch that
carries ``frozen_states`` (the frozen bottom's output, ``aligntax.train.frozen``) runs the top
blocks only, on those states.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a causal LM (the ModuleList inside its base model)."""
    lm = unwrap(model)
    decoder = getattr(lm, lm.base_model_prefix)
    layers = next((m for m in decoder.children() if isinstance(m, nn.ModuleList)), None)
    if layers is None:
        raise ValueError(f"{type(lm).__name__}: no list of decoder blocks found under "
                         f"'{lm.base_model_prefix}'; use train.trainable: full or lora")
    return layers


@contextmanager
def only_blocks(model: nn.Module, indices: Sequence[int], inputs: torch.Tensor | None = None) -> Iterator[None]:
    """Inside the block, the decoder runs the blocks ``indices`` only (in order); with ``inputs``
    the first of them reads ``inputs`` instead of what reaches it (the embeddings).

    The decoder's own forward still builds the mask and the position embeddings, so any family
    whose blocks sit in one ModuleList (Llama, GPT-2, Qwen2 ...) runs unchanged.
    """
    lm = unwrap(model)
    decoder = getattr(lm, lm.base_model_prefix)
    layers = decoder_blocks(lm)
    name = next(n for n, m in decoder.named_children() if m is layers)
    chosen = [layers[i] for i in indices]

    def swap_input(module, args, kwargs):
        if args:
            return (inputs.to(args[0]), *args[1:]), kwargs
        return args, kwargs | {"hidden_states": inputs.to(kwargs["hidden_states"])}

    handle = chosen[0].register_forward_pre_hook(swap_input, with_kwargs=True) if inputs is not None else None
    setattr(decoder, name, nn.ModuleList(chosen))
    try:
        yield
    finally:
        setattr(decoder, name, layers)
        if handle is not None:
            handle.remove()


def last_hidden(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Last-layer hidden states [R, T, H] of the batch's rows (the top blocks only on ``frozen_states``)."""
    decoder, _ = decoder_and_head(model)
    mask = batch["attention_mask"]
    if mask.dim() == 4:
        mask = additive_mask(mask, next(decoder.parameters()).dtype)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": mask, "position_ids": batch["position_ids"],
              "use_cache": False}
    if "frozen_states" not in batch:
        return decoder(**kwargs).last_hidden_state
    split, n_blocks = int(batch["frozen_split"]), len(decoder_blocks(model))
    with only_blocks(model, range(split, n_blocks), batch["frozen_states"]):
        return decoder(**kwargs).last_hidden_state


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
    _, lm_head = decoder_and_head(model)
    hidden = last_hidden(model, batch)
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

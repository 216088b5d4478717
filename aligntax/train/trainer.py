"""The shared trainer: a transformers.Trainer whose ``compute_loss`` is CE (+ the contrastive term).

``train`` is used by every method (sft, contrastive, baselines through ``run_sft``): it selects
what is trainable (top decoder layers, LoRA or everything), trains with the packed or naive
collator, logs CE / L_cl / w separately (logging + DVCLive), checkpoints as safetensors (with
resume) and saves the final model + tokenizer, the contrastive head in its own file.
Nothing here names a device, so ``accelerate launch`` works unchanged.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments

from aligntax.config import check
from aligntax.io import atomic_dir
from aligntax.train.loss import LossConfig
from aligntax.train.objective import HEAD_NAME, attach_head, compute_objective, unwrap
from aligntax.train.packing import Encoded, collate

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    n_posts: int = 64
    """Train posts used (first n of data/raw/train.parquet; 0 = all)."""
    epochs: float = 1.0
    """Passes over the posts."""
    batch_size: int = 1
    """Posts per device batch (a post brings all its variants)."""
    grad_accum: int = 4
    """Batches per optimizer step."""
    lr: float = 3e-4
    """Peak learning rate (linear warm-up, then linear decay)."""
    warmup_ratio: float = 0.1
    """Fraction of the steps spent warming up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    max_prompt_tokens: int = 192
    """Prompt budget in model tokens; longer posts are cut (the template is kept)."""
    max_summary_tokens: int = 48
    """Budget per summary variant in model tokens (eos added after); longer ones are truncated."""
    max_variants: int = 8
    """Variants per post including the reference (paper's groups: up to ~8)."""
    trainable: Literal["top_layers", "lora", "full"] = "top_layers"
    """What trains: the top `top_layers` blocks + final norm (bottom frozen, no graph kept), LoRA, or all."""
    top_layers: int = 2
    """Decoder blocks trained when trainable is top_layers."""
    lora_r: int = 8
    """LoRA rank (trainable: lora)."""
    lora_alpha: int = 16
    """LoRA scaling numerator (trainable: lora)."""
    lora_targets: str = "all-linear"
    """peft target_modules: `all-linear` or comma-separated module names (trainable: lora)."""
    packing: bool = True
    """Shared-prefix packing (one row per post); false = one row per variant (the reference path)."""
    save_steps: int = 0
    """Checkpoint every n optimizer steps into the checkpoint folder (0 = none)."""
    resume: bool = False
    """Resume from the newest checkpoint in the checkpoint folder, if any."""
    logging_steps: int = 2
    """Optimizer steps per log line / DVCLive step."""

    def __post_init__(self) -> None:
        check(self.n_posts >= 0, "train.n_posts", "an integer >= 0 (0 = all)")
        check(self.epochs > 0, "train.epochs", "a number > 0")
        check(self.batch_size >= 1, "train.batch_size", "an integer >= 1")
        check(self.grad_accum >= 1, "train.grad_accum", "an integer >= 1")
        check(self.lr > 0, "train.lr", "a number > 0")
        check(0 <= self.warmup_ratio < 1, "train.warmup_ratio", "a number in [0, 1)")
        check(self.weight_decay >= 0, "train.weight_decay", "a number >= 0")
        check(self.max_grad_norm > 0, "train.max_grad_norm", "a number > 0")
        check(self.max_prompt_tokens >= 8, "train.max_prompt_tokens", "an integer >= 8")
        check(self.max_summary_tokens >= 1, "train.max_summary_tokens", "an integer >= 1")
        check(self.max_variants >= 3, "train.max_variants", "an integer >= 3 (2 positives + 1 negative)")
        check(self.top_layers >= 1, "train.top_layers", "an integer >= 1")
        check(self.lora_r >= 1, "train.lora_r", "an integer >= 1")
        check(self.save_steps >= 0, "train.save_steps", "an integer >= 0")
        check(self.logging_steps >= 1, "train.logging_steps", "an integer >= 1")


class _Examples(Dataset):
    def __init__(self, examples: list[Encoded]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Encoded:
        return self.examples[i]


class AlignTrainer(Trainer):
    """Trainer with the aligntax objective; ``loss_cfg`` None trains CE only (SFT)."""

    def __init__(self, *args, loss_cfg: LossConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cfg = loss_cfg
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: Trainer scales by grad_accum
        self._sums = {"ce": 0.0, "l_cl": 0.0, "w": 0.0, "n": 0, "n_cl": 0}
        self.history: list[dict[str, float]] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = compute_objective(model, inputs, self.loss_cfg)
        if model.training:
            self._sums["ce"] += out["ce"].item()
            self._sums["n"] += 1
            if len(inputs["group_weight"]) and self.loss_cfg is not None:
                self._sums["l_cl"] += out["l_cl"].item()
                self._sums["w"] += out["w"].item()
                self._sums["n_cl"] += 1
        return (out["loss"], out) if return_outputs else out["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        s = self._sums
        if s["n"] and "loss" in logs:
            logs["ce"] = s["ce"] / s["n"]
            if s["n_cl"]:
                logs["l_cl"] = s["l_cl"] / s["n_cl"]
                logs["w"] = s["w"] / s["n_cl"]
            self.history.append({k: v for k, v in logs.items() if k in ("loss", "ce", "l_cl", "w")})
            self._sums = dict.fromkeys(s, 0) | {"ce": 0.0, "l_cl": 0.0, "w": 0.0}
        super().log(logs, start_time)


class _LiveCallback(TrainerCallback):
    """Training curves to DVCLive (plots under ``live_dir``), one step per log."""

    def __init__(self, live_dir: str | Path):
        from dvclive import Live

        self.live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)

    def on_log(self, args, state, control, logs=None, **kwargs):
        keys = [k for k in ("loss", "ce", "l_cl", "w", "learning_rate") if k in (logs or {})]
        if not keys:
            return
        for key in keys:
            self.live.log_metric(f"train/{key}", float(logs[key]))
        self.live.step = state.global_step
        self.live.make_summary()

    def on_train_end(self, args, state, control, **kwargs):
        self.live.end()


def select_trainable(model: PreTrainedModel, cfg: TrainConfig) -> PreTrainedModel:
    """Freeze / wrap ``model`` as ``cfg.trainable`` says; the contrastive head always trains."""
    if cfg.trainable == "lora":
        from peft import LoraConfig, get_peft_model

        targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else cfg.lora_targets.split(",")
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=targets,
                          modules_to_save=[HEAD_NAME] if hasattr(model, HEAD_NAME) else None)
        return get_peft_model(model, lora)
    if cfg.trainable == "top_layers":
        for p in model.parameters():
            p.requires_grad = False
        decoder = getattr(model, model.base_model_prefix)
        layers = next((m for m in decoder.children() if isinstance(m, torch.nn.ModuleList)), None)
        if layers is None or len(layers) < cfg.top_layers:
            raise ValueError(f"train.top_layers={cfg.top_layers}: the model has "
                             f"{0 if layers is None else len(layers)} decoder blocks; lower it")
        for block in layers[len(layers) - cfg.top_layers:]:
            block.requires_grad_(True)
        for module in decoder.children():  # final norm (not embeddings, not the blocks)
            if module is not layers and not isinstance(module, torch.nn.Embedding):
                module.requires_grad_(True)
        if hasattr(model, HEAD_NAME):
            getattr(model, HEAD_NAME).requires_grad_(True)
    return model


def train(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    examples: list[Encoded],
    cfg: TrainConfig,
    seed: int,
    out_dir: str | Path,
    loss_cfg: LossConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    live_dir: str | Path | None = None,
) -> dict:
    """Train on encoded examples and save model + tokenizer to ``out_dir``; returns metrics."""
    if not examples:
        raise ValueError("no training examples: check data/raw/train.parquet and train.n_posts")
    torch.manual_seed(seed)
    if loss_cfg is not None:
        attach_head(model)
    model = select_trainable(model, cfg)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else Path(out_dir).with_name(f".{Path(out_dir).name}.checkpoints")
    args = TrainingArguments(
        output_dir=str(ckpt), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
        lr_scheduler_type="linear", warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_safetensors=True, seed=seed, data_seed=seed, remove_unused_columns=False, report_to=[],
        dataloader_num_workers=0, dataloader_pin_memory=False, disable_tqdm=False, logging_first_step=False,
    )
    trainer = AlignTrainer(
        model=model, args=args, train_dataset=_Examples(examples), loss_cfg=loss_cfg,
        data_collator=partial(collate, packed=cfg.packing and loss_cfg is not None, pad_id=tok.pad_token_id,
                              contrastive=loss_cfg is not None),
        callbacks=[_LiveCallback(live_dir)] if live_dir else None,
    )
    resume = cfg.resume and ckpt.is_dir() and any(ckpt.glob("checkpoint-*"))
    start = time.time()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.time() - start
    save_model(trainer.model, tok, out_dir)
    hist = trainer.history
    metrics = {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": round(seconds, 1),
        "trainable_parameters": n_trainable,
        "resumed": bool(resume),
        "ce_first": hist[0]["ce"] if hist else math.nan,
        "ce_last": hist[-1]["ce"] if hist else math.nan,
    }
    cl = [h for h in hist if "l_cl" in h]
    if loss_cfg is not None and cl:
        metrics |= {"l_cl_first": cl[0]["l_cl"], "l_cl_last": cl[-1]["l_cl"],
                    "w_mean": sum(h["w"] for h in cl) / len(cl)}
    return metrics


def save_model(model: torch.nn.Module, tok: PreTrainedTokenizerBase, out_dir: str | Path) -> None:
    """Save a plain causal LM (LoRA merged) + tokenizer; the head goes to contrastive_head.safetensors."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = unwrap(model)
    head = model._modules.pop(HEAD_NAME, None)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if head is not None:
            save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()},
                      str(tmp / f"{HEAD_NAME}.safetensors"))
    if head is not None:
        model.add_module(HEAD_NAME, head)

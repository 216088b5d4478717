"""What every trained method shares: its settings, the Trainer base, what trains, arguments, saving.

``aligntax.train.core.train_method`` puts these together for each method (sft, contrastive and
the trained baselines): ``select_trainable`` chooses what trains (top decoder layers, LoRA or
everything), ``training_arguments`` is the one place the optimiser / schedule / budget become
``TrainingArguments``, ``AlignTrainer`` keeps running means of the objective's parts for the logs
(logging + DVCLive), and ``save_model`` writes the final model (only what trained, beside a pointer to
its base, when part of it trained) + tokenizer (the contrastive head in its own file). Nothing here
names a device, so ``accelerate launch`` works unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from dvclive import Live
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from tqdm import tqdm
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import ExportableState

from aligntax.config import check
from aligntax.io import atomic_dir
from aligntax.models import save_partial
from aligntax.train.loss import LossConfig
from aligntax.train.objective import HEAD_NAME, compute_objective, decoder_blocks, unwrap

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
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
    frozen_cache: bool = True
    """top_layers: compute the frozen bottom's states once per text and train the top on them (same
    results); off by itself when the bottom trains or is random (lora, full, dropout). Store: docs/training.md."""
    save_steps: int = 0
    """Checkpoint every n optimizer steps into the checkpoint folder (0 = none); a multiple of logging_steps."""
    resume: bool = False
    """Resume from the newest checkpoint in the checkpoint folder if its fingerprint is this run's (else afresh)."""
    logging_steps: int = 2
    """Optimizer steps per log line / DVCLive step."""
    seed: int | None = None
    """Training seed (init of new weights, data order, dropout); null = the global `seed`. Lets a
    sweep vary training alone while the augmented data (seeded by the global `seed`) stays put."""

    def __post_init__(self) -> None:
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
        check(self.seed is None or (isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0),
              "train.seed", "null (the global seed) or an integer >= 0")
        check(self.save_steps % self.logging_steps == 0, "train.save_steps",
              "a multiple of train.logging_steps (a checkpoint then holds the whole loss history)")


class AlignTrainer(Trainer):
    """Trainer with the aligntax objective; ``loss_cfg`` None trains CE only (SFT).

    A method with another objective overrides ``objective`` only: the running means of the
    parts it returns (ce, l_cl, ul, ...) are added to each log line here, once for every method.
    """

    def __init__(self, *args, loss_cfg: LossConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cfg = loss_cfg
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: Trainer scales by grad_accum
        self._sums: dict[str, list[float]] = {}

    def objective(self, model, inputs) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(outputs with the ``loss``, the detached parts to log for this batch)."""
        out = compute_objective(model, inputs, self.loss_cfg)
        parts = {"ce": out["ce"]}
        if len(inputs["group_weight"]) and self.loss_cfg is not None:
            parts |= {"l_cl": out["l_cl"], "w": out["w"]}
        return out, parts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out, parts = self.objective(model, inputs)
        if model.training:
            check_finite("loss", out["loss"].item(), self.state.global_step + 1)
            for key, value in parts.items():
                total = self._sums.setdefault(key, [0.0, 0])
                total[0] += value.item()
                total[1] += 1
        return (out["loss"], out) if return_outputs else out["loss"]

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.world_size > 1 and self.accelerator.sync_gradients and not self.is_fsdp_enabled:
            average_gradients(model)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # every process logs at the same steps: the means are over all processes' batches
            sums = [self._sums]
            if self.args.world_size > 1:
                sums = [None] * self.args.world_size
                torch.distributed.all_gather_object(sums, self._sums)
            merged: dict[str, list[float]] = {}
            for part in sums:
                for key, (total, n) in part.items():
                    merged.setdefault(key, [0.0, 0])
                    merged[key][0] += total
                    merged[key][1] += n
            logs |= {key: total / n for key, (total, n) in merged.items()}
            self._sums = {}
        super().log(logs, start_time)


def average_gradients(model: torch.nn.Module) -> None:
    """Average the trainable gradients over the processes (DDP), in one all-reduce.

    The objective runs the decoder and LM head directly, not the DDP wrapper's forward, so DDP's own
    gradient hooks stay unarmed; doing it here once per optimizer step is the same average. A
    gradient that is None on some processes only (a part unused by their batch) counts as zeros.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    torch.distributed.all_reduce(has, op=torch.distributed.ReduceOp.MAX)
    used = [p for p, h in zip(params, has.tolist(), strict=True) if h]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in used])
    torch.distributed.all_reduce(flat)
    flat /= torch.distributed.get_world_size()
    offset = 0
    for p in used:
        p.grad.copy_(flat[offset:offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()


class NonFiniteLoss(RuntimeError):
    """A NaN/inf loss or gradient norm; ``train_method`` names the method and the fix."""


def check_finite(key: str, value: float, step: int) -> None:
    """Raise NonFiniteLoss when ``value`` (the ``key`` logged at optimizer step ``step``) is NaN or inf."""
    if not math.isfinite(value):
        raise NonFiniteLoss(f"non-finite {key} ({value}) at step {step}")


class FiniteGuard(TrainerCallback):
    """Stops training at the first logged loss, gradient norm or train_loss that is NaN or inf.

    Works for every Trainer (trl's too); AlignTrainer also checks each batch's loss.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm", "train_loss"):
            if isinstance((logs or {}).get(key), int | float):
                check_finite(key, float(logs[key]), state.global_step)


class LossTotal(TrainerCallback, ExportableState):
    """Keeps the Trainer's running sum of the loss in each checkpoint and restores it on resume.

    The Trainer restarts that sum at 0 when it resumes, so a resumed run would report the
    train_loss of its last stretch only; with the sum restored it reports the whole run's.
    """

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def state(self) -> dict:
        return {"args": {}, "attributes": {"total": getattr(self.trainer, "_total_loss_scalar", 0.0)}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if state.global_step > 0 and isinstance(saved, dict):  # resumed: the sum up to the checkpoint
            self.trainer._total_loss_scalar = saved["attributes"]["total"]


class LiveCallback(TrainerCallback):
    """Training curves to DVCLive (plots under ``live_dir``): one point per log, at its optimizer step.

    On resume the points logged before the checkpoint (its log history) are written first, so
    the curves equal an uninterrupted run's.
    """

    def __init__(self, live_dir: str | Path, keys: tuple[str, ...]):
        self.live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        self.keys = keys

    def _write(self, step: int, logs: dict) -> None:
        keys = [k for k in self.keys if k in logs]
        if not keys:
            return
        self.live.step = step
        for key in keys:
            self.live.log_metric(f"train/{key}", float(logs[key]))
        self.live.make_summary()

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            for logs in state.log_history:  # empty unless resumed
                self._write(logs["step"], logs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            self._write(state.global_step, logs or {})

    def on_train_end(self, args, state, control, **kwargs):
        self.live.end()


def _log_line(state, logs: dict | None) -> None:
    if state.is_world_process_zero and logs:
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}
        log.info("step %d: %s", state.global_step, shown)


class LogProgress(ProgressCallback):
    """tqdm's bar for the steps; each log line goes through ``logging`` on a line of its own
    (the bar is cleared while the line is written, then drawn again below it)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        with tqdm.external_write_mode():
            _log_line(state, logs)


class LogLines(TrainerCallback):
    """Log lines through ``logging`` when the bar is off (``disable_tqdm``)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        _log_line(state, logs)


def trained_blocks(n_layers: int, cfg: TrainConfig) -> range:
    """Indices of the decoder blocks that train: the top ``top_layers`` or all of them."""
    if cfg.trainable == "top_layers":
        return range(max(0, n_layers - cfg.top_layers), n_layers)
    return range(n_layers)


def select_trainable(model: PreTrainedModel, cfg: TrainConfig) -> PreTrainedModel:
    """Freeze / wrap ``model`` as ``cfg.trainable`` says; the contrastive head always trains."""
    if cfg.trainable == "lora":
        targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else cfg.lora_targets.split(",")
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=targets,
                          modules_to_save=[HEAD_NAME] if hasattr(model, HEAD_NAME) else None)
        return get_peft_model(model, lora)
    if cfg.trainable == "top_layers":
        for p in model.parameters():
            p.requires_grad = False
        layers = decoder_blocks(model)
        if len(layers) < cfg.top_layers:
            raise ValueError(f"train.top_layers={cfg.top_layers}: the model has {len(layers)} decoder blocks; lower it")
        for i in trained_blocks(len(layers), cfg):
            layers[i].requires_grad_(True)
        for module in getattr(model, model.base_model_prefix).children():  # final norm (not embeddings, not blocks)
            if module is not layers and not isinstance(module, torch.nn.Embedding):
                module.requires_grad_(True)
        if hasattr(model, HEAD_NAME):
            getattr(model, HEAD_NAME).requires_grad_(True)
    return model


def training_arguments(
    cfg: TrainConfig, seed: int, output_dir: str | Path, cls: type[TrainingArguments] = TrainingArguments,
    **extra: Any,
) -> TrainingArguments:
    """The ``train`` section as ``cls`` (TrainingArguments or a trl subclass); ``extra`` adds method fields."""
    return cls(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
        lr_scheduler_type="linear", warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_safetensors=True, seed=seed, data_seed=seed, report_to=[],
        dataloader_num_workers=0, dataloader_pin_memory=False, **({"remove_unused_columns": False} | extra),
    )


def save_model(
    model: torch.nn.Module, tok: PreTrainedTokenizerBase, out_dir: str | Path, base_dir: str | Path | None = None,
) -> None:
    """Save the trained causal LM + tokenizer; the head goes to contrastive_head.safetensors.

    When only part of it trained (top_layers, LoRA) only those tensors are saved, in the dtype they
    trained in (LoRA: the merged weights of the adapted layers), with a pointer to ``base_dir``
    (default: the folder the model was loaded from); ``load_model`` puts them back on that base.
    Everything trained (full): the whole model.
    """
    keys = trained_keys(model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = unwrap(model)
    base = Path(base_dir) if base_dir is not None else Path(model.name_or_path or "")
    if keys is not None and not (base / "config.json").is_file():
        log.warning("the base folder %s of the trained model is unknown: saving the whole model", base)
        keys = None
    head = model._modules.pop(HEAD_NAME, None)
    try:
        with atomic_dir(out_dir) as tmp:
            if keys is None:
                model.save_pretrained(tmp, safe_serialization=True)
            else:
                save_partial(model, tmp, keys, base, out_dir)
            tok.save_pretrained(tmp)
            if head is not None:
                save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()},
                          str(tmp / f"{HEAD_NAME}.safetensors"))
    finally:
        if head is not None:
            model.add_module(HEAD_NAME, head)


def trained_keys(model: torch.nn.Module) -> set[str] | None:
    """State-dict keys (of the unwrapped model, LoRA merged) of what trained; None when everything did.

    The contrastive head is left out: ``save_model`` saves it in its own file.
    """
    params = list(model.named_parameters())
    if all(p.requires_grad for _, p in params):
        return None
    keys = set()
    for name, p in params:
        name = name.removeprefix("base_model.model.")  # peft's wrapper
        if not p.requires_grad or name.split(".")[0] == HEAD_NAME:
            continue
        keys.add(name.split(".lora_")[0] + ".weight" if ".lora_" in name else name)
    return keys



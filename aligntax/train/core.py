"""One training core for every trained method (sft, contrastive and the trained baselines).

``train_method`` owns what they share: the train posts, loading the tokenizer and the model,
what trains, TrainingArguments, the checkpoint folder and resume, timing, saving, the metrics
and the DVCLive curves. A method is a module holding only what differs:

    CONFIG: type | None           # its params dataclass (None: it reads only `train`)
    NEEDS_GROUPS: bool            # whether it learns from data/augment/train/groups.parquet
    def prepare(inputs: TrainInputs, tok, cfg) -> Job   # its encoding, Trainer class or hook

Adding a trained method = one such module + one params section + one line under `trained:` in
params.yaml; the registry (aligntax/methods.py) imports the module, the DVC stages ``train@<method>``
are a foreach over that list.

With `train.trainable: top_layers` and `train.frozen_cache` the frozen bottom's states are
computed once per text (``aligntax.train.frozen``) and the top trains on them, for every method
whose Job names its ``pieces``; the metrics say whether it was used and why not.

Under a multi-process launcher (params.yaml `launcher`: torchrun, or accelerate launch with a
config from configs/accelerate/) every process trains its shard of each batch (DDP; gloo when no
GPU is visible) and only the main process writes: the checkpoint fingerprint, the DVCLive curves,
the model (after the others reach a barrier) and, in stages/train.py, the metrics JSON.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pandas as pd
import torch
from transformers import PreTrainedModel, PrinterCallback, ProgressCallback, Trainer, TrainingArguments

from aligntax.config import ConfigError
from aligntax.io import atomic_dir
from aligntax.models import ModelConfig, load_model, load_tokenizer
from aligntax.timing import Timer
from aligntax.train import frozen
from aligntax.train.resume import ChecksumOnSave, fingerprint, resume_point, unverified_removed
from aligntax.train.trainer import (
    AlignTrainer,
    FiniteGuard,
    LiveCallback,
    LogLines,
    LogProgress,
    LossTotal,
    NonFiniteLoss,
    TrainConfig,
    save_model,
    select_trainable,
    trained_blocks,
    training_arguments,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class TrainInputs:
    """What every trained method starts from."""

    base_dir: Path
    raw: pd.DataFrame
    train: TrainConfig
    model: ModelConfig
    seed: int
    out_dir: Path
    groups: pd.DataFrame | None = None
    checkpoint_dir: Path | None = None
    live_dir: Path | None = None

    @property
    def checkpoints(self) -> Path:
        """The checkpoint folder: as given, else `.<out name>.checkpoints` beside the output."""
        out = Path(self.out_dir)
        return Path(self.checkpoint_dir) if self.checkpoint_dir else out.with_name(f".{out.name}.checkpoints")


@dataclass
class Job:
    """What a method's ``prepare`` hands the core: its data and how it trains on it."""

    dataset: Sequence
    """Encoded training examples (one per post, or per pair for DPO)."""
    rows: dict
    """Row accounting: read, kept, dropped and why."""
    collator: Callable | None = None
    """Batches examples (None: the Trainer class's own)."""
    trainer_cls: type[Trainer] = AlignTrainer
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra Trainer arguments (loss_cfg, ref_model ...)."""
    args_cls: type[TrainingArguments] = TrainingArguments
    args_extra: dict[str, Any] = field(default_factory=dict)
    """Method fields of ``args_cls`` beyond the shared `train` section."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Config attributes set when the model loads (e.g. dropout rates)."""
    setup_model: Callable[[PreTrainedModel], dict] | None = None
    """Runs on the loaded model after seeding, before what trains is chosen; returns metrics."""
    logged: tuple[str, ...] = ("ce",)
    """Logged values (besides the loss) kept as curves and as first/last metrics."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Method metrics known before training."""
    pieces: frozen.Pieces | None = None
    """(prompt, summaries read behind it) of an example, when ``collator`` takes ``frozen=`` and the
    objective runs through ``objective.last_hidden`` (or, with no ``collator``, ``trainer_cls`` takes
    ``frozen=``, e.g. through ``frozen.top_on_rows``): the method can train on cached frozen states."""


def train_method(method: ModuleType, cfg: Any, inputs: TrainInputs) -> dict | None:
    """Train ``method`` from ``inputs.base_dir`` on the train posts, save to ``inputs.out_dir``.

    Returns the metrics on the main process and None on the others (which write nothing).
    Nothing is written (no model, no curves) when training fails, e.g. on a non-finite loss.
    """
    if inputs.raw.empty:
        raise ValueError("no train posts: data/raw/train.parquet is empty; raise data.n_train")
    if getattr(method, "NEEDS_GROUPS", False) and inputs.groups is None:
        raise ValueError(f"{method.__name__} learns from the groups artifact: pass --groups "
                         "data/augment/train/groups.parquet (dvc repro entity-perturb)")
    check_launch()
    timer = Timer()
    with timer.phase("load"):
        tok = load_tokenizer(inputs.base_dir)
    with timer.phase("encode"):
        job = method.prepare(inputs, tok, cfg)
    if len(job.dataset) == 0:
        raise ValueError(f"{method.__name__}: no training examples from {len(inputs.raw)} posts; rows: {job.rows}")
    args = training_arguments(inputs.train, inputs.seed, inputs.checkpoints, job.args_cls,
                              **(launch_arguments() | job.args_extra))
    if len(job.dataset) < args.world_size:
        raise ValueError(f"{method.__name__}: {len(job.dataset)} training example(s) for {args.world_size} "
                         "processes; launch at most as many processes as examples (params.yaml `launcher`) "
                         "or raise data.n_train")
    main = args.process_index == 0
    checkpoint = from_main(args, lambda: checkpoint_to_resume(method, cfg, inputs))
    with timer.phase("load"):
        model = load_model(inputs.base_dir, dtype="float32", **job.model_overrides)
        split = trained_blocks(model.config.num_hidden_layers, inputs.train).start
        before = frozen.snapshot(model, split) if inputs.train.trainable == "top_layers" else None
        torch.manual_seed(inputs.seed)
        setup = job.setup_model(model) if job.setup_model else {}
        model = select_trainable(model, inputs.train)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with timer.phase("cache"):
        store, cache_metrics = frozen_store(model, job, inputs, split, before, args)
    if store is not None and job.collator is not None:
        job.collator = partial(job.collator, frozen=store)
    elif store is not None:  # the Trainer class batches (trl): it takes the store itself
        job.trainer_kwargs = {**job.trainer_kwargs, "frozen": store}
    keys = ("loss", *job.logged)
    # The curves are written into a folder staged in the (git-ignored) checkpoint folder and moved onto
    # live_dir only when training succeeds: a failure keeps the previous curves and leaves nothing half-written.
    staged = atomic_dir(inputs.live_dir, staging=inputs.checkpoints) if main and inputs.live_dir else nullcontext()
    with staged as live_dir, unverified_removed(inputs.checkpoints if main else None):
        try:
            with timer.phase("train"):  # the Trainer's own preparation too (trl: tokenizing, reference log-probs)
                trainer = build_trainer(job, model, args, live_dir, keys)
                result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except NonFiniteLoss as err:
            name = method.__name__.rsplit(".", 1)[-1]
            raise RuntimeError(f"training {name} stopped: {err}; nothing was written. Lower train.lr (now "
                               f"{inputs.train.lr:g}) or the weight of the method's loss term (e.g. loss.alpha)"
                               ) from None
        with timer.phase("save"):
            trained = gathered_model(trainer, job, inputs) if trainer.is_fsdp_enabled else trainer.model
            if main:
                save_model(trained, tok, inputs.out_dir)
            trainer.accelerator.wait_for_everyone()  # the others exit only once the model is in place
    if not main:
        return None
    return {
        "rows": job.rows, **job.metrics, **setup,
        "seed": inputs.seed, "steps": result.global_step, "train_loss": result.training_loss,
        "seconds": timer.seconds(), "trainable_parameters": n_trainable, "resumed": checkpoint is not None,
        "frozen_cache": cache_metrics, **curve_ends(trainer.state.log_history, keys),
    }


def frozen_store(
    model: PreTrainedModel, job: Job, inputs: TrainInputs, split: int, before: list | None, args: TrainingArguments,
) -> tuple[frozen.FrozenStore | None, dict]:
    """The filled store of the frozen bottom's states, or None and why not (logged); and its metrics.

    Several processes: the main one fills the on-disk store first, the others then read it.
    """
    train = inputs.train
    if not train.frozen_cache:
        why = "train.frozen_cache is false"
    elif train.trainable != "top_layers":
        why = f"train.trainable is {train.trainable}: the whole model trains"
    elif job.pieces is None:
        why = f"{job.trainer_cls.__name__} runs the whole model itself"
    elif os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        why = "FSDP shards the model"
    else:
        why = frozen.why_not(model, split, before, job.pieces(job.dataset[0])[0])
    if why is not None:
        log.info("frozen states: not cached (%s); the whole model runs every step", why)
        return None, {"used": False, "why_not": why}
    store = frozen.FrozenStore(model, split, inputs.base_dir, frozen.store_root())
    for turn in ("main", "others") if args.world_size > 1 else ("main",):
        if (args.process_index == 0) == (turn == "main"):
            store.fill(model, job.dataset, job.pieces)
        if args.world_size > 1:
            torch.distributed.barrier()
    metrics = store.metrics()
    log.info("frozen states below block %d: %d pieces (%d computed, %d from %s, %d bad entries), %.0f MiB",
             split, metrics["pieces"], metrics["computed"], metrics["from_disk"], store.folder or "memory only",
             metrics["bad_entries"], metrics["mib"])
    return store, metrics


def gathered_model(trainer: Trainer, job: Job, inputs: TrainInputs) -> torch.nn.Module | None:
    """Under FSDP: the full trained weights in a fresh copy of the model on the main process (None elsewhere).

    Each process holds only its shards; every process joins the gather, the main one loads the
    result into a model built as the trained one was (overrides, setup, what trains).
    """
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if not trainer.is_world_process_zero():
        return None
    model = load_model(inputs.base_dir, dtype="float32", **job.model_overrides)
    if job.setup_model:
        job.setup_model(model)
    model = select_trainable(model, inputs.train)
    model.load_state_dict(state)
    return model


def check_launch() -> None:
    """Fail at once on a launch this machine cannot run: an FSDP accelerate config without a GPU."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true") and not torch.cuda.is_available():
        raise ConfigError("the accelerate config asks for FSDP (distributed_type: FSDP) but no GPU is visible; "
                          "FSDP shards the model over GPUs. On CPU set params.yaml `launcher` to "
                          "'accelerate launch --config_file configs/accelerate/cpu-2proc.yaml' or 'python'")


def launch_arguments() -> dict[str, Any]:
    """TrainingArguments the launch decides: several processes and no GPU -> DDP on CPU over gloo.

    accelerate 1.x starts N CPU processes only through mpirun (distributed_type MULTI_CPU); its
    torchrun-based launcher (what torchrun and configs/accelerate/cpu-2proc.yaml use) leaves the
    processes to pick their device, and without ``use_cpu`` each would train alone.
    """
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return {"use_cpu": True} if several and not torch.cuda.is_available() else {}


def from_main(args: TrainingArguments, make: Callable[[], T]) -> T:
    """``make()`` run on the main process only (it may write), its result handed to every process."""
    value = [make() if args.process_index == 0 else None]
    if args.world_size > 1:
        torch.distributed.broadcast_object_list(value, src=0)
    return value[0]


def checkpoint_to_resume(method: ModuleType, cfg: Any, inputs: TrainInputs) -> Path | None:
    """The checkpoint to resume from, when train.resume is on and its fingerprint is this run's.

    Whenever checkpoints are written (train.save_steps > 0) or resume is asked for, a fresh start
    clears the folder's checkpoints and records this run's fingerprint (``aligntax.train.resume``).
    """
    if not (inputs.train.resume or inputs.train.save_steps):
        return None
    key = fingerprint(method, cfg, inputs)
    return resume_point(inputs.checkpoints, key, inputs.train.resume, LossTotal.__name__,
                        inputs.train.logging_steps)


def build_trainer(job: Job, model: PreTrainedModel, args: TrainingArguments, live_dir: Path | None,
                  keys: tuple[str, ...]) -> Trainer:
    """The method's Trainer with the shared callbacks: finite-loss guard, curves (to ``live_dir``, None: none),
    log lines, loss sum."""
    live = [LiveCallback(live_dir, (*keys, "learning_rate"))] if live_dir else []
    callbacks = [FiniteGuard(), *live, ChecksumOnSave()]
    trainer = job.trainer_cls(model=model, args=args, train_dataset=job.dataset, data_collator=job.collator,
                              callbacks=callbacks, **job.trainer_kwargs)
    bar = trainer.pop_callback(ProgressCallback)
    trainer.pop_callback(PrinterCallback)
    trainer.add_callback(LogProgress if bar else LogLines)
    trainer.add_callback(LossTotal(trainer))
    return trainer


def curve_ends(history: list[dict], keys: Sequence[str]) -> dict[str, float | None]:
    """First and last logged value of each key (`rewards/margins` -> rewards_margins_first ...)."""
    logs = [h for h in history if "loss" in h]
    out: dict[str, float | None] = {}
    for key in keys:
        seen = [h[key] for h in logs if key in h]
        name = key.replace("/", "_")
        out[f"{name}_first"] = seen[0] if seen else None
        out[f"{name}_last"] = seen[-1] if seen else None
    return out

"""Keyed resume: a checkpoint folder is only resumed by the run that would have written it.

When checkpoints are written (``train.save_steps > 0``) the folder holds ``fingerprint.json`` beside
its ``checkpoint-*`` folders: every value the trained model depends on (the method and its
params, the `train` and `model` sections, the seed, md5s of the training frames, of every file of
the base model and of the training code, the library versions). ``train.resume: true`` resumes
from the newest complete checkpoint only when the fingerprint is unchanged; otherwise it logs
which entries differ and starts afresh, clearing the stale checkpoints so nothing mixes.

A checkpoint is only resumed when its content is verified: once the Trainer has saved it,
``ChecksumOnSave`` records the sha256 of each of its files in ``aligntax_checksums.json`` (written
last, atomically). A checkpoint whose files no longer match (truncated by a kill or a full disk
during the save, edited since) is deleted with one log line and its steps are trained again;
``unverified_removed`` deletes such half-written checkpoints when training fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from transformers import TrainerCallback

from aligntax.io import file_digest, write_error, write_json

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"
CHECKSUMS = "aligntax_checksums.json"
"""In each checkpoint folder: relative path -> sha256 of every other file, written after the save completed."""
PACKAGE = Path(__file__).resolve().parents[1]
"""The aligntax package folder; code paths in a fingerprint are relative to it."""
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate")
NOT_KEYED = ("resume", "save_steps")
"""`train` fields that change neither the model nor the logged history."""


def md5_frame(df: pd.DataFrame | None) -> str | None:
    """md5 of a frame's index, columns and values (exact: floats as repr, arrays as lists)."""
    if df is None:
        return None
    text = json.dumps(df.to_dict(orient="split"), default=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o))
    return hashlib.md5(text.encode()).hexdigest()


def _as_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg


def _library(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def code_files(method: ModuleType) -> list[Path]:
    """The training code: aligntax/train and the method module's own package (e.g. aligntax/baselines)."""
    folders = {PACKAGE / "train", Path(method.__file__).resolve().parent}
    files = {f for d in folders for f in d.glob("*.py")} | {Path(method.__file__).resolve()}
    return sorted(files)


def fingerprint(method: ModuleType, cfg: Any, inputs: Any) -> dict[str, Any]:
    """Everything a trained model of ``method`` depends on (``inputs``: a TrainInputs), as plain JSON values."""
    train = {k: v for k, v in dataclasses.asdict(inputs.train).items() if k not in NOT_KEYED}
    base = Path(inputs.base_dir)
    code = {}
    for f in code_files(method):
        code[f.relative_to(PACKAGE).as_posix() if f.is_relative_to(PACKAGE) else f.name] = file_digest(f, "md5")
    return json.loads(json.dumps({
        "method": method.__name__, "config": _as_dict(cfg), "train": train, "model": _as_dict(inputs.model),
        "seed": inputs.seed, "data": {"raw": md5_frame(inputs.raw), "groups": md5_frame(inputs.groups)},
        "base": {f.relative_to(base).as_posix(): file_digest(f, "md5") for f in sorted(base.rglob("*")) if f.is_file()},
        "code": code, "libraries": {name: _library(name) for name in LIBRARIES},
    }, default=str))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the entries that differ (`train.lr`, `base.model.safetensors`, `seed` ...)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(key)
    return out


def _step(path: Path) -> int:
    tail = path.name.removeprefix("checkpoint-")
    return int(tail) if tail.isdigit() else -1


def record_checkpoint(path: Path) -> None:
    """Write ``CHECKSUMS`` into a checkpoint folder the Trainer has finished saving."""
    files = sorted(f for f in Path(path).rglob("*") if f.is_file() and f.name != CHECKSUMS)
    write_json({f.relative_to(path).as_posix(): file_digest(f) for f in files}, Path(path) / CHECKSUMS)


def verified(path: Path) -> bool:
    """Whether a checkpoint folder holds exactly the files its ``CHECKSUMS`` lists, with those bytes (a full read)."""
    try:
        listed = json.loads((Path(path) / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return False
    files = {f.relative_to(path).as_posix(): f for f in Path(path).rglob("*") if f.is_file() and f.name != CHECKSUMS}
    return isinstance(listed, dict) and set(listed) == set(files) and \
        all(file_digest(files[name]) == digest for name, digest in listed.items())


class ChecksumOnSave(TrainerCallback):
    """Records the checksums of each checkpoint right after the Trainer saved it (main process only)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            record_checkpoint(Path(args.output_dir) / f"checkpoint-{state.global_step}")


@contextmanager
def unverified_removed(folder: Path | None) -> Iterator[None]:
    """If the body fails, delete the checkpoints of ``folder`` (None: nothing) that were not completely
    saved (no verified checksums): nothing half-written stays behind. A failed write that names no file
    (a full disk while the Trainer saved) is raised as an OSError naming ``folder``."""
    try:
        yield
    except BaseException as err:
        if folder is None:
            raise
        for path in Path(folder).glob("checkpoint-*"):
            if path.is_dir() and not verified(path):
                shutil.rmtree(path, ignore_errors=True)
        failed = write_error(err, folder) if isinstance(err, Exception) else None
        if failed is None:
            raise
        raise failed from err


def usable_checkpoint(path: Path, marker: str, every: int) -> bool:
    """Whether ``path`` is complete (its trainer_state.json parses and holds ``marker``'s state, and every
    file matches the checksums recorded after the save) and taken at a logging step (a multiple of
    ``every``), so no loss is pending unlogged in it.

    The Trainer also saves at the last step, logged or not: resuming there would lose that stretch's loss.
    """
    if _step(path) % every:
        return False
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and marker in (state.get("stateful_callbacks") or {}) and verified(path)


def resume_point(folder: Path, key: dict[str, Any], resume: bool, marker: str, every: int) -> Path | None:
    """The checkpoint to resume from (None: start afresh); a fresh start clears ``folder``'s checkpoints.

    ``marker``: the name of the stateful callback every complete checkpoint records; ``every``:
    train.logging_steps.
    """
    folder = Path(folder)
    found = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0), key=_step)
    done = [p for p in found if usable_checkpoint(p, marker, every)]
    if resume:  # a checkpoint that looks complete but whose content does not verify is never resumed
        for bad in (p for p in found if (p / "trainer_state.json").is_file() and not verified(p)):
            log.warning("%s: its files do not match the checksums recorded when it was saved (truncated or changed "
                        "since, or the save was cut short); deleting it, its steps will be trained again", bad)
            shutil.rmtree(bad, ignore_errors=True)
    if resume and done:
        try:
            old = json.loads((folder / FINGERPRINT).read_text())
        except (OSError, ValueError):
            old = None
        if old == key:
            for partial in (p for p in found if _step(p) > _step(done[-1])):
                shutil.rmtree(partial, ignore_errors=True)
            log.info("resuming from %s (same fingerprint)", done[-1])
            return done[-1]
        why = f"its {FINGERPRINT} is missing or unreadable" if old is None else \
            "it was written with different " + ", ".join(differences(old, key)[:8])
        log.warning("not resuming from %s: %s; starting afresh", folder, why)
    elif resume:
        log.info("no complete checkpoint in %s; starting afresh", folder)
    for stale in found:
        shutil.rmtree(stale, ignore_errors=True)
    write_json(key, folder / FINGERPRINT)
    return None

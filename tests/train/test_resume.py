"""Keyed resume and the finite-loss guard of the training core (aligntax/train/resume.py, core.py)."""

from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aligntax.config import ConfigError
from aligntax.methods import TrainedMethod, load_method
from aligntax.models import ModelConfig
from aligntax.train import sft
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.resume import FINGERPRINT, differences, fingerprint, usable_checkpoint
from aligntax.train.trainer import AlignTrainer, FiniteGuard, LossTotal, NonFiniteLoss, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
RAW = pd.DataFrame({
    "id": ["a", "b", "c", "d"], "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
    "post": ["my cat knocked water on my laptop.", "we drove to new york and got lost.",
             "i dropped my phone in the toilet.", "locked out in the rain, called my mom."],
    "summary": ["cat spilled water", "got lost in new york", "phone in toilet", "locked out"],
})
MC = ModelConfig(prompt_template="post: {post} tl;dr:")
TRAIN = dict(epochs=2, grad_accum=1, lr=1e-2, warmup_ratio=0.0, logging_steps=1, max_prompt_tokens=40,
             trainable="full")
SLOW = '''
"""sft whose steps sleep SLOW_STEP seconds (so a test can kill it mid-training); the same results as sft."""
import os
import time
import types

from aligntax.train.sft import sft_job
from aligntax.train.trainer import AlignTrainer

CONFIG = None
NEEDS_GROUPS = False


class SlowTrainer(AlignTrainer):
    def training_step(self, *args, **kwargs):
        time.sleep(float(os.environ.get("SLOW_STEP", "0")))
        return super().training_step(*args, **kwargs)


def prepare(inputs, tok, cfg):
    job = sft_job(tok, inputs.raw[["post", "summary"]], inputs)
    job.trainer_cls = SlowTrainer
    return job
'''


def _inputs(base, tmp_path, tag, **train) -> TrainInputs:
    cfg = TrainConfig(**(TRAIN | train))
    return TrainInputs(base, RAW, cfg, MC, 0, tmp_path / tag, checkpoint_dir=tmp_path / "ckpt",
                       live_dir=tmp_path / f"live_{tag}")


def _same_files(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert [f for f in files if not filecmp.cmp(a / f, b / f, shallow=False)] == []


def _comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("seconds", "resumed", "method")}


def _wait_for_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not usable_checkpoint(ckpt / "checkpoint-2", LossTotal.__name__, 1):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_kill_9_mid_training_then_resume_same_params_equal_changed_params_fresh(tiny_llama_dir, tmp_path, monkeypatch):
    (tmp_path / "slow_sft.py").write_text(textwrap.dedent(SLOW))
    RAW.to_parquet(tmp_path / "train.parquet")
    params = {"seed": 0, "model": {"prompt_template": MC.prompt_template},
              "train": TRAIN | {"epochs": 4, "save_steps": 2, "resume": True},
              "trained": {"slow": {"module": "slow_sft.py", "section": "train", "data": "train.parquet"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "stages.train", "--method", "slow", "--base", str(tiny_llama_dir), "--train",
           "train.parquet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "SLOW_STEP": "0.4"}
    killed = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(killed, tmp_path / "checkpoints" / "train_slow")
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL  # killed mid-training: 16 steps of 0.4 s, checkpoint-2 just written
    assert not (tmp_path / "models" / "slow").exists() and not (tmp_path / "metrics").exists()
    shutil.copytree(tmp_path / "checkpoints" / "train_slow", tmp_path / "changed" / "ckpt")  # for another lr below

    run = subprocess.run(cmd, cwd=tmp_path, env=env | {"SLOW_STEP": "0"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming from" in run.stderr and "checkpoint-" in run.stderr
    resumed = json.loads((tmp_path / "metrics" / "train" / "slow.json").read_text())
    assert resumed["resumed"] and resumed["steps"] == 16

    monkeypatch.syspath_prepend(str(tmp_path))  # the same method module, uninterrupted, in this process
    method = load_method(TrainedMethod("slow_sft.py", "train", "train.parquet"), "slow")
    whole = train_method(method, None, _inputs(tiny_llama_dir, tmp_path / "whole", "model", epochs=4))
    assert not whole["resumed"]
    assert _comparable(resumed) == _comparable(whole)  # exact: train_loss, loss/ce first and last
    _same_files(tmp_path / "models" / "slow", tmp_path / "whole" / "model")  # byte-identical model
    _same_files(tmp_path / "dvclive" / "train_slow", tmp_path / "whole" / "live_model")  # the same curves

    changed = train_method(method, None, _inputs(tiny_llama_dir, tmp_path / "changed", "model", epochs=4, lr=5e-3,
                                                 save_steps=2, resume=True))  # the killed run's checkpoints
    fresh = train_method(method, None, _inputs(tiny_llama_dir, tmp_path / "fresh", "model", epochs=4, lr=5e-3))
    assert not changed["resumed"] and _comparable(changed) == _comparable(fresh)
    _same_files(tmp_path / "changed" / "model", tmp_path / "fresh" / "model")


def test_resume_with_changed_params_starts_afresh(tiny_llama_dir, tmp_path, caplog):
    train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "old", save_steps=2))
    assert (tmp_path / "ckpt" / "checkpoint-2").is_dir() and (tmp_path / "ckpt" / FINGERPRINT).is_file()
    with caplog.at_level(logging.INFO, logger="aligntax"):
        changed = train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "changed", save_steps=2, lr=5e-3,
                                                  resume=True))
    assert not changed["resumed"]
    assert "not resuming" in caplog.text and "train.lr" in caplog.text
    key = json.loads((tmp_path / "ckpt" / FINGERPRINT).read_text())
    assert key["train"]["lr"] == 5e-3  # the stale checkpoints were replaced by this run's

    fresh = train_method(sft, None, TrainInputs(tiny_llama_dir, RAW, TrainConfig(**(TRAIN | {"lr": 5e-3})), MC, 0,
                                                tmp_path / "fresh", checkpoint_dir=tmp_path / "ckpt_fresh"))
    assert _comparable(changed) == _comparable(fresh)
    _same_files(tmp_path / "changed", tmp_path / "fresh")

    (tmp_path / "ckpt" / FINGERPRINT).unlink()  # a checkpoint without a fingerprint is never used
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aligntax"):
        again = train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "again", save_steps=2, lr=5e-3,
                                                resume=True))
    assert not again["resumed"] and f"its {FINGERPRINT} is missing" in caplog.text
    _same_files(tmp_path / "again", tmp_path / "fresh")


def test_non_finite_loss_is_one_error_and_writes_nothing(tiny_llama_dir, tmp_path):
    inputs = _inputs(tiny_llama_dir, tmp_path, "model", lr=1e30, max_grad_norm=1.0)
    with pytest.raises(RuntimeError, match=r"training sft stopped: non-finite (loss|grad_norm) \(nan\) at step \d+; "
                       r"nothing was written\. Lower train\.lr"):
        train_method(sft, None, inputs)
    assert not inputs.out_dir.exists() and not inputs.live_dir.exists()
    assert not any(p.name.startswith((".model", ".live_model")) for p in tmp_path.iterdir())  # no temp folder left


@pytest.mark.parametrize("logs", [{"loss": float("nan")}, {"loss": 2.0, "grad_norm": float("inf")},
                                  {"train_loss": float("-inf")}])
def test_finite_guard_stops_any_trainer_on_a_non_finite_log(logs):
    state = type("State", (), {"global_step": 7})()
    with pytest.raises(NonFiniteLoss, match="at step 7"):
        FiniteGuard().on_log(None, state, None, logs=logs)
    FiniteGuard().on_log(None, state, None, logs={"loss": 1.5, "grad_norm": 0.3, "epoch": 1.0})


def test_save_steps_must_be_a_multiple_of_logging_steps():
    with pytest.raises(ConfigError, match="train.save_steps"):
        TrainConfig(save_steps=3, logging_steps=2)
    assert TrainConfig(save_steps=4, logging_steps=2).save_steps == 4


class NanTrainer(AlignTrainer):
    def objective(self, model, inputs):
        out, parts = super().objective(model, inputs)
        return out | {"loss": out["loss"] * float("nan")}, parts


def _nan_prepare(inputs, tok, cfg):
    job = sft.prepare(inputs, tok, cfg)
    job.trainer_cls = NanTrainer
    return job


def test_nan_loss_stops_at_the_step_it_appears(tiny_llama_dir, tmp_path):
    method = types.ModuleType("nan_sft")
    method.CONFIG, method.NEEDS_GROUPS, method.prepare = None, False, _nan_prepare
    inputs = _inputs(tiny_llama_dir, tmp_path, "model", logging_steps=2)
    with pytest.raises(RuntimeError, match=r"training nan_sft stopped: non-finite loss \(nan\) at step 1; "):
        train_method(method, None, inputs)  # AlignTrainer checks each batch's loss, before any log
    assert not inputs.out_dir.exists() and not inputs.live_dir.exists()


def test_fingerprint_keys_every_input_but_not_resume_or_save_steps(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")

    def key(raw=RAW, **train):
        return fingerprint(sft, None, TrainInputs(base, raw, TrainConfig(**(TRAIN | train)), MC, 0, tmp_path / "m"))

    first = key()
    assert first == key(resume=True, save_steps=4)  # how a run is checkpointed does not change its result
    assert first["code"]["train/core.py"] and first["data"]["groups"] is None
    assert differences(first, key(lr=5e-3)) == ["train.lr"]
    assert differences(first, key(raw=RAW.assign(summary=RAW["summary"] + "."))) == ["data.raw"]
    (base / "model.safetensors").write_bytes(b"other weights")
    assert differences(first, key()) == ["base.model.safetensors"]

"""The training stage under a multi-process launcher: 2 CPU processes (DDP over gloo) vs 1 process.

The same global batch -- 2 processes x batch 1 vs 1 process x batch 1 x grad_accum 2 (the Trainer
averages the accumulated batches as DDP averages the processes') -- gives the same loss curve
(rtol 1e-4) and the same model (max abs weight difference 1e-5); only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from aligntax.config import ConfigError
from aligntax.models import ModelConfig
from aligntax.sections import check_launcher
from aligntax.train import sft
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "accelerate"
POSTS = ["my cat knocked water on my laptop.", "we drove to new york and got lost.",
         "i dropped my phone in the toilet.", "locked out in the rain, called my mom.",
         "my boss laughed at me at work today.", "forgot my keys on monday morning.",
         "john and mary got lost for the weekend.", "the glass of water fell on my phone."]
RAW = pd.DataFrame({"id": list("abcdefgh"), "subreddit": ["tifu"] * 8, "title": ["t"] * 8, "post": POSTS,
                    "summary": [p.split(" on ")[0] for p in POSTS]})
TEMPLATE = "post: {post} tl;dr:"
TRAIN = dict(epochs=1, batch_size=1, lr=1e-2, warmup_ratio=0.0, logging_steps=1, max_prompt_tokens=40,
             trainable="full")
RTOL, ATOL_WEIGHTS = 1e-4, 1e-5
PROBE = '''
"""stages.train with a record of every metrics / model write: "<rank> <what> <path>" per line."""
import os
import runpy
import sys

import aligntax.io
import aligntax.train.core as core


def spy(what, fn, path_at):
    def wrapped(*args, **kwargs):
        with open(os.environ["WRITES_LOG"], "a") as fh:
            fh.write(f"{os.environ.get('RANK', '0')} {what} {args[path_at]}\\n")
        return fn(*args, **kwargs)
    return wrapped


aligntax.io.write_json = spy("write_json", aligntax.io.write_json, 1)
core.save_model = spy("save_model", core.save_model, 2)
sys.argv = ["stages.train", *sys.argv[1:]]
runpy.run_module("stages.train", run_name="__main__")
'''
FAILING = '''
"""sft whose rank 1 fails at its third step."""
from aligntax.train.sft import sft_job
from aligntax.train.trainer import AlignTrainer

CONFIG = None
NEEDS_GROUPS = False


class FailingTrainer(AlignTrainer):
    def training_step(self, *args, **kwargs):
        if self.args.process_index == 1 and self.state.global_step == 2:
            raise RuntimeError("rank 1 failed on purpose")
        return super().training_step(*args, **kwargs)


def prepare(inputs, tok, cfg):
    job = sft_job(tok, inputs.raw[["post", "summary"]], inputs)
    job.trainer_cls = FailingTrainer
    return job
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage_dir(tmp_path: Path, raw: pd.DataFrame, module: str = "aligntax/train/sft.py", **train) -> Path:
    """A folder with train.parquet and a params.yaml training `sft` (or ``module``) on it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw.to_parquet(tmp_path / "train.parquet")
    params = {"seed": 0, "model": {"prompt_template": TEMPLATE}, "train": TRAIN | train,
              "trained": {"sft": {"module": module, "section": "train", "data": "train.parquet"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _launch(launcher: list[str], script: list[str], cwd: Path, base: Path, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", *launcher, *script, "--method", "sft", "--base", str(base), "--train", "train.parquet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _accelerate(config: Path) -> list[str]:
    return ["accelerate.commands.launch", "--config_file", str(config), "--main_process_port", str(_free_port())]


def _torchrun(n: int) -> list[str]:
    return ["torch.distributed.run", "--nproc_per_node", str(n), "--master_port", str(_free_port())]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _curve(live: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(live / "plots" / "metrics" / "train" / f"{key}.tsv", sep="\t")


def test_two_processes_match_one_and_only_rank0_writes(tiny_llama_dir, tmp_path):
    ref = tmp_path / "one"
    one = train_method(sft, None, TrainInputs(tiny_llama_dir, RAW, TrainConfig(**(TRAIN | {"grad_accum": 2})),
                                              ModelConfig(prompt_template=TEMPLATE), 0, ref / "model",
                                              checkpoint_dir=ref / "ckpt", live_dir=ref / "live"))
    work = _stage_dir(tmp_path / "two", RAW, grad_accum=1)
    (work / "probe.py").write_text(textwrap.dedent(PROBE))
    run = _launch(_accelerate(CONFIGS / "cpu-2proc.yaml"), ["probe.py"], work, tiny_llama_dir,
                  WRITES_LOG=str(work / "writes.log"))
    assert run.returncode == 0, run.stderr[-3000:]

    writes = sorted((work / "writes.log").read_text().splitlines())  # two processes, one write of each
    assert writes == ["0 save_model models/sft", "0 write_json metrics/train/sft.json"]
    assert sorted(p.name for p in work.iterdir()) == ["checkpoints", "dvclive", "metrics", "models", "params.yaml",
                                                      "probe.py", "train.parquet", "writes.log"]
    assert _files(work / "checkpoints") == []  # the Trainer's output folder (rank 0 makes it), no checkpoint asked
    assert _files(work / "models" / "sft") == _files(ref / "model")
    assert _files(work / "dvclive" / "train_sft") == _files(ref / "live")
    metrics = json.loads((work / "metrics" / "train" / "sft.json").read_text())
    assert metrics["steps"] == one["steps"] == 4  # 8 posts, global batch 2

    for key in ("loss", "ce"):  # the same curve: the logged means cover both processes' batches
        two_curve, one_curve = _curve(work / "dvclive" / "train_sft", key), _curve(ref / "live", key)
        assert two_curve["step"].tolist() == one_curve["step"].tolist() == [1, 2, 3, 4]
        assert two_curve[key].to_numpy() == pytest.approx(one_curve[key].to_numpy(), rel=RTOL)
    assert metrics["train_loss"] == pytest.approx(one["train_loss"], rel=RTOL)
    assert one["loss_first"] != pytest.approx(one["loss_last"], rel=1e-2)  # it trained: the curve moved

    two_w, one_w = load_file(work / "models" / "sft" / "model.safetensors"), load_file(ref / "model" / "model.safetensors")
    assert two_w.keys() == one_w.keys()
    assert max((two_w[k] - one_w[k]).abs().max().item() for k in one_w) < ATOL_WEIGHTS
    base = load_file(tiny_llama_dir / "model.safetensors")
    assert max((one_w[k] - base[k]).abs().max().item() for k in base) > 1e-3  # the compared models trained


def test_two_processes_on_cached_frozen_states_match_one_plain(tiny_llama_dir, tmp_path):
    """top_layers + train.frozen_cache under DDP: rank 0 fills the on-disk store, rank 1 reads it; same model."""
    budget = {"trainable": "top_layers", "top_layers": 1}
    ref = tmp_path / "one"
    one = train_method(sft, None, TrainInputs(tiny_llama_dir, RAW, TrainConfig(**(TRAIN | budget | {
        "grad_accum": 2, "frozen_cache": False})), ModelConfig(prompt_template=TEMPLATE), 0, ref / "model",
        checkpoint_dir=ref / "ckpt", live_dir=ref / "live"))
    work = _stage_dir(tmp_path / "two", RAW, grad_accum=1, **budget)
    store = tmp_path / "store"
    run = _launch(_torchrun(2), ["-m", "stages.train"], work, tiny_llama_dir, ALIGNTAX_FROZEN_CACHE=str(store))
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((work / "metrics" / "train" / "sft.json").read_text())
    assert metrics["frozen_cache"]["used"] and metrics["frozen_cache"]["computed"] == 16  # 8 prompts + 8 references
    assert len(list(store.rglob("*.safetensors"))) == 16
    two_curve, one_curve = _curve(work / "dvclive" / "train_sft", "loss"), _curve(ref / "live", "loss")
    assert two_curve["loss"].to_numpy() == pytest.approx(one_curve["loss"].to_numpy(), rel=RTOL)
    two_w, one_w = load_file(work / "models" / "sft" / "model.safetensors"), load_file(ref / "model" / "model.safetensors")
    assert two_w.keys() == one_w.keys() and any("layers.1." in k for k in one_w)
    assert max((two_w[k] - one_w[k]).abs().max().item() for k in one_w) < ATOL_WEIGHTS
    assert one["steps"] == metrics["steps"] == 4


def test_a_failing_rank_fails_the_stage_with_its_error_and_no_outputs(tiny_llama_dir, tmp_path):
    work = _stage_dir(tmp_path, RAW, module="failing_sft.py", grad_accum=1)
    (work / "failing_sft.py").write_text(textwrap.dedent(FAILING))
    run = _launch(_torchrun(2), ["-m", "stages.train"], work, tiny_llama_dir)
    assert run.returncode != 0
    assert "error: rank 1 failed on purpose" in run.stderr
    assert not (work / "models").exists() and not (work / "metrics").exists()
    assert not (work / "dvclive" / "train_sft").exists()  # rank 0 had written two steps of curves: removed


def test_more_processes_than_examples_is_one_clear_error(tiny_llama_dir, tmp_path):
    work = _stage_dir(tmp_path, RAW.head(1))
    run = _launch(_torchrun(2), ["-m", "stages.train"], work, tiny_llama_dir)
    assert run.returncode != 0
    assert "error: aligntax.train.sft: 1 training example(s) for 2 processes" in run.stderr
    assert "/aligntax/" not in run.stderr  # the ranks end with the one line, no traceback (the launcher adds its own)
    assert not (work / "models").exists() and not (work / "metrics").exists() and not (work / "dvclive").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP runs where there are GPUs")
def test_fsdp_config_on_cpu_is_one_clear_error(tiny_llama_dir, tmp_path):
    config = yaml.safe_load((CONFIGS / "fsdp-multinode.yaml").read_text())
    config |= {"num_machines": 1, "num_processes": 2, "mixed_precision": "no"}  # one machine, as a user tries it
    del config["main_process_ip"]
    (tmp_path / "fsdp.yaml").write_text(yaml.safe_dump(config))
    work = _stage_dir(tmp_path, RAW)
    run = _launch(_accelerate(tmp_path / "fsdp.yaml"), ["-m", "stages.train"], work, tiny_llama_dir)
    assert run.returncode != 0
    assert "error: the accelerate config asks for FSDP (distributed_type: FSDP) but no GPU is visible" in run.stderr
    assert "/aligntax/" not in run.stderr  # the ranks end with the one line, no traceback (the launcher adds its own)
    assert not (work / "models").exists() and not (work / "metrics").exists()


@pytest.mark.parametrize("value", ["python", "torchrun --nproc_per_node 2",
                                   "accelerate launch --config_file configs/accelerate/cpu-2proc.yaml"])
def test_launcher_forms_pass(value, monkeypatch):
    monkeypatch.chdir(ROOT)
    check_launcher({"launcher": value})


@pytest.mark.parametrize("value", ["python3", "torchrun --nproc_per_node 0", "accelerate launch --cpu",
                                   "accelerate launch --config_file /etc/x.yaml", "python; rm -rf data",
                                   "accelerate launch --config_file configs/accelerate/missing.yaml", 2])
def test_other_launchers_are_rejected_naming_the_key(value, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="'launcher'"):
        check_launcher({"launcher": value})


def test_the_train_stages_start_with_the_launcher():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    assert stage["cmd"].startswith("python -m stages.launch --launcher -m stages.train ")  # stages/launch.py
    assert "launcher" in stage["params"]
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["launcher"] == "python"


def test_every_heavy_stage_starts_with_the_launcher():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "evaluate", "backtranslate", "toxify", "entity-perturb"):
        cmd = stages[name]["do"]["cmd"]
        assert cmd.startswith("python -m stages.launch --launcher -m stages."), name
    # the light stages start through stages.launch too (warm start: aligntax/warm.py), never the params' launcher
    assert stages["compare"]["cmd"].startswith("python -m stages.launch -m stages.compare")

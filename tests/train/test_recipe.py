"""The documented recipe: a trained method = one module + one params section + one `trained:` line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from aligntax.config import load_section, read_params
from aligntax.models import load_model
from aligntax.train.core import TrainedMethod, load_method

ROOT = Path(__file__).resolve().parents[2]

TOY = '''
"""A toy trained method: CE on the reference summary, scaled by a weight of its own."""
from dataclasses import dataclass

from aligntax.train.core import Job
from aligntax.train.sft import sft_job
from aligntax.train.trainer import AlignTrainer


@dataclass
class ToyConfig:
    weight: float = 1.0
    """Scale of the CE loss."""


CONFIG = ToyConfig
NEEDS_GROUPS = False


class ToyTrainer(AlignTrainer):
    def __init__(self, *args, weight: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight = weight

    def objective(self, model, inputs):
        out, parts = super().objective(model, inputs)
        out["loss"] = self.weight * out["loss"]
        return out, parts | {"scaled": out["loss"].detach()}


def prepare(inputs, tok, cfg):
    job = sft_job(tok, inputs.raw[["post", "summary"]], inputs)
    job.trainer_cls, job.trainer_kwargs, job.logged = ToyTrainer, {"weight": cfg.weight}, ("ce", "scaled")
    return job
'''


def test_toy_method_trains_through_the_recipe(tiny_llama_dir, tmp_path):
    (tmp_path / "toy_method.py").write_text(textwrap.dedent(TOY))
    raw = pd.DataFrame({"id": ["a", "b", "c", "d"], "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
                        "post": ["my cat knocked water on my laptop.", "we drove to new york and got lost.",
                                 "i dropped my phone in the toilet.", "locked out in the rain, called my mom."],
                        "summary": ["cat spilled water", "got lost in new york", "phone in toilet", "locked out"]})
    raw.to_parquet(tmp_path / "train.parquet")
    params = {"seed": 0, "model": {"prompt_template": "post: {post} tl;dr:"},
              "train": {"grad_accum": 2, "lr": 1e-2, "warmup_ratio": 0.0, "logging_steps": 1, "top_layers": 1,
                        "max_prompt_tokens": 40},
              "toy": {"weight": 2.0},  # the method's params section
              "trained": {"toy": {"module": "toy_method.py", "section": "toy", "data": "train.parquet"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "stages.train", "--method", "toy", "--base", str(tiny_llama_dir),
           "--train", "train.parquet", "--out", "models/toy"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]

    metrics = json.loads((tmp_path / "metrics" / "train_toy.json").read_text())
    assert metrics["method"] == "toy" and metrics["steps"] == 2 and metrics["rows"]["kept"] == 4
    assert metrics["scaled_first"] == pytest.approx(2 * metrics["ce_first"], rel=1e-5)
    before = load_file(str(tiny_llama_dir / "model.safetensors"))
    saved = load_file(str(tmp_path / "models" / "toy" / "model.safetensors"))  # only what trained
    assert saved and all(k.startswith(("model.layers.1.", "model.norm.")) for k in saved)
    after = load_model(tmp_path / "models" / "toy", dtype="float32").state_dict()  # rebuilt on its base
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    curve = pd.read_csv(tmp_path / "dvclive" / "train_toy" / "plots" / "metrics" / "train" / "scaled.tsv", sep="\t")
    assert curve["step"].tolist() == [1, 2]
    lines = re.split(r"[\r\n]", run.stderr)
    for step in (1, 2):  # each loss line logged once, on a line of its own (never run into tqdm's bar)
        logged = [line for line in lines if f"step {step}: {{'loss'" in line]
        assert len(logged) == 1 and "aligntax.train.trainer: step" in logged[0] and "%|" not in logged[0]


def test_shipped_trained_methods_follow_the_recipe():
    params = read_params(ROOT / "params.yaml")
    assert list(params["trained"]) == ["sft", "contrastive", "cda", "dropout", "dpo", "unlikelihood"]
    for name, raw in params["trained"].items():
        entry = TrainedMethod(**raw)
        assert (ROOT / entry.module).is_file() and (ROOT / entry.data).suffix == ".parquet"
        method = load_method(entry, name)
        if method.CONFIG is not None:
            load_section(params, entry.section, method.CONFIG)
        assert method.NEEDS_GROUPS == (entry.data == "data/augment/train/groups.parquet")
        assert params["methods"][name] == f"models/{name}"

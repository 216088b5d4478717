"""The documented recipe: a trained method = its module + its params section + its `trained:` line
(+ its `methods:` line to evaluate it), with no edit anywhere else.

A copy of the project (aligntax/, stages/, dvc.yaml, params.yaml) with a tiny model as models/base
and tiny data; the toy method is added by writing its module and editing params.yaml only, then
DVC itself runs check-params -> train@toy -> evaluate@<method> -> compare -> summarize
(`dvc repro -s`, one stage at a time: the stages before them are replaced by the tiny inputs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from aligntax.io import write_parquet
from aligntax.methods import load_method, registry
from aligntax.models import load_model
from aligntax.schema import GROUPS, RAW

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
POSTS = ["my cat knocked water on my laptop.", "we drove to new york with john and got lost.",
         "i dropped my phone in the toilet at work.", "locked out in the rain, so i called my mom."]
SUMMARIES = ["cat spilled water", "got lost in new york", "phone in toilet", "locked out"]


def _small_project(root: Path, base_model: Path) -> None:
    """The project with tiny inputs in place of the stages before training, and only `base` to compare."""
    for name in ("aligntax", "stages"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for kind in ("trained", "fitted"):  # the shipped methods are not run here: their lists and sections go
        for entry in params[kind].values():
            if entry["section"] != "train":
                del params[entry["section"]]
        params[kind] = {}
    params["methods"] = {"base": "models/base"}
    params["compare"]["reference"] = "base"
    params["model"]["prompt_template"] = "post: {post} tl;dr:"
    params["train"].update(grad_accum=2, lr=1e-2, warmup_ratio=0.0, logging_steps=1, top_layers=1, max_prompt_tokens=40)
    params["scoring"]["toxicity"]["backend"] = "profanity-check"  # offline, no fitted heads needed
    params["scoring"]["faithfulness"]["backend"] = "overlap"
    params["evaluate"].update(n_posts=3, max_prompt_tokens=64)
    params["evaluate"]["generate"].update(max_new_tokens=4, batch_size=2)
    params["evaluate"]["metrics"]["n_boot"] = 100
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    shutil.copytree(base_model, root / "models" / "base")
    (root / "models" / "scorers").mkdir()
    raw = pd.DataFrame({"id": [f"p{i}" for i in range(4)], "post": POSTS, "summary": SUMMARIES,
                        "subreddit": ["tifu"] * 4, "title": [None] * 4})
    for split in ("train", "eval"):
        write_parquet(raw, root / "data" / "raw" / f"{split}.parquet", RAW)
    groups = pd.DataFrame([
        {"post_id": "p1", "role": role, "kind": kind, "text": text, "entity_spans": [], "toxicity": 0.1}
        for role, kind, text in (("positive", "reference", "got lost in new york"),
                                 ("positive", "backtranslation", "we got lost in new york"),
                                 ("negative", "swap_ent", "got lost in boston"))])
    write_parquet(groups, root / "data" / "augment" / "eval" / "groups.parquet", GROUPS)
    (root / "metrics").mkdir()
    shutil.copy(ROOT / "metrics" / "scorers.json", root / "metrics" / "scorers.json")  # the report's header


def _add_toy(root: Path) -> None:
    """The recipe, and nothing else: the module, its params section, its `trained:` and `methods:` lines."""
    (root / "aligntax" / "baselines" / "toy.py").write_text(textwrap.dedent(TOY))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["toy"] = {"weight": 2.0}
    params["trained"]["toy"] = {"module": "aligntax/baselines/toy.py", "section": "toy", "data": "data/raw/train.parquet"}
    params["methods"]["toy"] = "models/toy"
    params["seeds"] = {"methods": ["toy"], "extra": [1]}  # and one extra training seed, through the matrix stages
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_a_toy_method_goes_through_the_pipeline_by_its_module_and_params_alone(tiny_llama_dir, tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    _small_project(root, tiny_llama_dir)
    _add_toy(root)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(root)}

    def dvc(*args: str) -> subprocess.CompletedProcess:
        run = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, f"dvc {' '.join(args)}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        return run

    dvc("init", "--no-scm")
    assert {"train@toy", "evaluate@toy", "train-seed@toy-1", "evaluate-seed@toy-1"} <= set(
        dvc("stage", "list", "--name-only").stdout.split())
    logs = {stage: dvc("repro", "-s", stage) for stage in
            ("check-params", "train@toy", "train-seed@toy-1", "evaluate@base", "evaluate@toy", "evaluate-seed@toy-1",
             "compare", "summarize")}

    metrics = json.loads((root / "metrics" / "train" / "toy.json").read_text())
    assert metrics["method"] == "toy" and metrics["steps"] == 2 and metrics["rows"]["kept"] == 4
    assert metrics["scaled_first"] == pytest.approx(2 * metrics["ce_first"], rel=1e-5)  # its own section's weight
    before = load_file(str(tiny_llama_dir / "model.safetensors"))
    saved = load_file(str(root / "models" / "toy" / "model.safetensors"))  # only what trained
    assert saved and all(k.startswith(("model.layers.1.", "model.norm.")) for k in saved)
    after = load_model(root / "models" / "toy", dtype="float32").state_dict()  # rebuilt on its base
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    lines = re.split(r"[\r\n]", logs["train@toy"].stderr + logs["train@toy"].stdout)
    for step in (1, 2):  # each loss line logged once, on a line of its own (never run into tqdm's bar)
        logged = [line for line in lines if f"step {step}: {{'loss'" in line]
        assert len(logged) == 1 and "aligntax.train.trainer: step" in logged[0] and "%|" not in logged[0]

    evaluated = json.loads((root / "metrics" / "evaluate" / "toy.json").read_text())
    assert evaluated["method"] == "toy" and evaluated["n"] == 3 and evaluated["preference"]["applicable"]
    compared = json.loads((root / "metrics" / "compare.json").read_text())
    assert compared["methods"] == 2 and set(compared["toy"]) >= {"d_toxicity", "d_faithfulness"}
    assert compared["toy"]["seeds"] == 2 and [r["run"] for r in compared["toy"]["per_seed"]] == ["toy", "toy-s1"]
    assert [r["seed"] for r in compared["toy"]["per_seed"]] == [0, 1]
    seeded = json.loads((root / "metrics" / "train" / "toy-s1.json").read_text())
    assert seeded["method"] == "toy" and seeded["ce_first"] != metrics["ce_first"]  # another init and order
    assert "| `toy` | 2 (mean) |" in (root / "reports" / "comparison.md").read_text()
    summary = json.loads((root / "metrics" / "summary.json").read_text())
    assert list(summary) == ["base", "toy"] and "loss" in summary["toy"]
    curves = json.loads((root / "metrics" / "train_curves.json").read_text())
    assert {row["method"] for row in curves} == {"toy"} and [row["step"] for row in curves] == [1, 2]


def test_shipped_trained_methods_follow_the_recipe():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    trained = {name: m for name, m in registry(params).items() if m.kind == "trained"}
    assert list(trained) == list(params["trained"]) and trained
    for name, method in trained.items():
        entry = method.entry
        assert (ROOT / entry.module).is_file() and entry.data.endswith(".parquet")
        module = load_method(entry, name)
        assert module.CONFIG is None or entry.section in params  # its own section, when it reads one
        assert method.folder == f"models/{name}"  # evaluated, from the folder train@<name> writes

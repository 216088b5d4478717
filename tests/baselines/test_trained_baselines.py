"""Trained baselines end to end on a tiny model: real optimizer steps through the shared trainer."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from safetensors.torch import load_file

from aligntax.baselines import cda, dpo, dropout, unlikelihood
from aligntax.models import ModelConfig
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.trainer import TrainConfig

RAW = pd.DataFrame({
    "id": ["p1", "p2", "p3", "p4"],
    "post": ["my cat knocked over a glass of water on my laptop.", "we drove to new york with his sister.",
             "my mom called my boss in boston.", "i dropped my phone in the toilet at work today."],
    "summary": ["cat spilled water on laptop", "drove to new york", "mom called my boss", "phone in toilet"],
    "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
})
GROUPS = pd.DataFrame({
    "post_id": ["p1", "p1", "p2", "p3", "p4"],
    "role": ["negative"] * 5,
    "kind": ["toxic_lm", "swap_ent", "swap_ent", "toxic_lexicon", "sys_lowcon"],
    "text": ["stupid cat spilled damn water", "dog spilled water on laptop", "drove to boston",
             "my idiot mom called my boss", "phone in the sink"],
})
TRAIN = TrainConfig(epochs=1.0, batch_size=1, grad_accum=2, lr=1e-2, warmup_ratio=0.0,
                    max_prompt_tokens=96, max_summary_tokens=16, logging_steps=1)
MODEL = ModelConfig(prompt_template="post: {post} tl;dr:")


CONFIGS = {"cda": cda.CdaConfig(), "dropout": dropout.DropoutConfig(), "dpo": dpo.DpoConfig(),
           "unlikelihood": unlikelihood.UnlikelihoodConfig(max_negatives_per_post=2)}


def _run(method: str, base, out, live):
    module = {"cda": cda, "dropout": dropout, "dpo": dpo, "unlikelihood": unlikelihood}[method]
    inputs = TrainInputs(base, RAW, TRAIN, MODEL, 0, out, groups=GROUPS, live_dir=live)
    return train_method(module, CONFIGS[method], inputs)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cda", "dropout", "dpo", "unlikelihood"])
def test_trained_baseline_takes_real_steps_and_saves(method, tiny_llama_dir, tmp_path):
    out = tmp_path / method
    metrics = _run(method, tiny_llama_dir, out, tmp_path / "live")
    assert metrics["steps"] == 2
    loss = pd.read_csv(tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert loss["step"].tolist() == [1, 2]  # every trained method writes its curves
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    before = load_file(str(tiny_llama_dir / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    top = [k for k in before if k.startswith("model.layers.1.")]
    assert top and all(not (before[k] == after[k]).all() for k in top if k.endswith("weight"))
    assert (out / "tokenizer.json").is_file()
    if method == "cda":
        assert metrics["cda"]["counterfactual_rows_trained"] == 1  # the 4 rows: p1, p2, twin of p2, p3
    if method == "unlikelihood":
        assert metrics["rows"]["pairs"] == 5 and metrics["rows"]["penalised_tokens"] > 0
    if method == "dpo":
        assert metrics["rows"]["pairs"] == 4  # one pair per post

"""Real training steps on tiny models: parameters change, loss finite, bad input (resume: test_resume.py)."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from aligntax.io import write_parquet
from aligntax.models import ModelConfig, load_model
from aligntax.schema import RAW
from aligntax.train import contrastive, sft
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.groups import build_posts
from aligntax.train.loss import LossConfig
from aligntax.train.trainer import TrainConfig

RAW_ROWS = pd.DataFrame({
    "id": ["a", "b", "c", "d"],
    "post": ["i dropped my phone in the toilet at work today and my boss laughed.",
             "we drove to new york with john and mary for the weekend and got lost.",
             "my cat knocked over a glass of water on my laptop on monday morning.",
             "forgot my keys and got locked out in the rain, called my mom in boston."],
    "summary": ["dropped my phone in the toilet.", "drove to new york with john, got lost.",
                "cat spilled water on my laptop on monday.", "locked out in the rain."],
    "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
})


def _span(text, word, label="GPE"):
    start = text.index(word)
    return [{"start": start, "end": start + len(word), "label": label}]


def _groups():
    rows = [
        ("a", "positive", "reference", "dropped my phone in the toilet.", [], 0.01),
        ("a", "positive", "backtranslation", "my phone fell in the toilet.", [], 0.02),
        ("a", "negative", "toxic_lm", "dropped my stupid phone in the damn toilet, idiot.", [], 0.93),
        ("a", "negative", "swap_ent", "dropped my laptop in the toilet.", [], float("nan")),
        ("b", "positive", "reference", "drove to new york with john, got lost.",
         _span("drove to new york with john, got lost.", "new york"), 0.0),
        ("b", "positive", "backtranslation", "went to new york with john and got lost.",
         _span("went to new york with john and got lost.", "new york"), 0.01),
        ("b", "negative", "swap_ent", "drove to boston with john, got lost.",
         _span("drove to boston with john, got lost.", "boston"), 0.05),
        ("c", "positive", "reference", "cat spilled water on my laptop on monday.", [], 0.0),
        ("c", "negative", "toxic_lm", "stupid cat ruined my laptop.", [], 0.8),  # 1 positive only
        ("zz", "positive", "reference", "unknown post.", [], 0.0),
    ]
    return pd.DataFrame(rows, columns=["post_id", "role", "kind", "text", "entity_spans", "toxicity"])


MC = ModelConfig(prompt_template="post: {post} tl;dr:")


def _inputs(base, cfg: TrainConfig, out, raw=RAW_ROWS, groups=None, **kwargs) -> TrainInputs:
    return TrainInputs(base, raw, cfg, MC, 0, out, groups=groups, **kwargs)
CFG = dict(epochs=1, grad_accum=2, lr=1e-2, warmup_ratio=0.0, logging_steps=1, max_prompt_tokens=40)


def test_build_posts_rules():
    posts, counts = build_posts(RAW_ROWS, _groups(), max_variants=8)
    assert [p.post_id for p in posts] == ["a", "b", "c", "d"]
    assert [p.contrastive for p in posts] == [True, True, False, False]
    assert counts["posts_too_few_positives"] == 1 and counts["posts_without_group"] == 1
    assert counts["group_rows_unknown_post"] == 1 and counts["nan_toxicity"] == 1
    assert posts[1].variants[0].spans == [(9, 17)]  # reference spans taken from the group
    assert [v.positive for v in posts[0].variants] == [True, True, False, False]
    assert len(posts[2].variants) == 1  # CE only
    capped, counts = build_posts(RAW_ROWS, _groups(), max_variants=3)
    assert len(capped[0].variants) == 3 and counts["variants_capped"] == 1


def test_loss_negatives_leave_kinds_out_with_accounting():
    """No toxic negatives: post a keeps its swap_ent, c (only a toxic one, and 1 positive) stays CE only."""
    posts, counts = build_posts(RAW_ROWS, _groups(), max_variants=8, negatives=["swap_ent", "mask_regen"])
    assert [p.contrastive for p in posts] == [True, True, False, False]
    assert [v.text for v in posts[0].variants if not v.positive] == ["dropped my laptop in the toilet."]
    assert counts["negatives_excluded"] == 2 and counts["posts_negatives_excluded"] == 0
    posts, counts = build_posts(RAW_ROWS, _groups(), max_variants=8, negatives=["toxic_lm"])
    assert [p.contrastive for p in posts] == [True, False, False, False]  # b had a swap_ent only: loses its group
    assert counts["negatives_excluded"] == 2 and counts["posts_negatives_excluded"] == 1
    assert counts["posts_without_negative"] == 0 and counts["posts_too_few_positives"] == 1
    assert sum(counts[k] for k in ("posts_contrastive", "posts_without_group", "posts_too_few_positives",
                                   "posts_without_negative", "posts_negatives_excluded")) == counts["posts"] == 4


def _changed(before, model):
    after = dict(model.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, after[n].detach())]


def test_sft_step_changes_parameters(tiny_llama_dir, tmp_path):
    base = load_model(tiny_llama_dir, dtype="float32")
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    cfg = TrainConfig(**CFG, trainable="top_layers", top_layers=1)
    metrics = train_method(sft, None, _inputs(tiny_llama_dir, cfg, tmp_path / "sft", live_dir=tmp_path / "live"))
    assert metrics["steps"] == 2 and metrics["rows"]["kept"] == 4
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    trained = load_model(tmp_path / "sft", dtype="float32")
    changed = _changed(before, trained)
    assert any("layers.1." in n for n in changed) and not any("layers.0." in n for n in changed)
    assert not (tmp_path / "sft" / "contrastive_head.safetensors").exists()
    curve = pd.read_csv(tmp_path / "live" / "plots" / "metrics" / "train" / "ce.tsv", sep="\t")
    assert curve["step"].tolist() == [1, 2]  # one point per logged optimizer step, the last at the final step
    assert curve["ce"].tolist() == pytest.approx([metrics["ce_first"], metrics["ce_last"]])


@pytest.mark.parametrize("trainable", ["full", "lora"])
def test_contrastive_step_changes_parameters_and_logs(trainable, tiny_gpt2_dir, tmp_path):
    base = load_model(tiny_gpt2_dir, dtype="float32")
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    cfg = TrainConfig(**CFG, trainable=trainable)
    metrics = train_method(contrastive, LossConfig(scale="dynamic", temperature=0.5),
                           _inputs(tiny_gpt2_dir, cfg, tmp_path / "cl", groups=_groups()))
    assert metrics["rows"]["posts_contrastive"] == 2
    assert metrics["l_cl_first"] > 0 and metrics["w_posts_mean"] > 1.0
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    trained = load_model(tmp_path / "cl", dtype="float32")
    assert len(_changed(before, trained)) > 0
    head = load_file(tmp_path / "cl" / "contrastive_head.safetensors")
    assert head["net.0.weight"].shape == (32, 32)
    assert not any("contrastive_head" in k for k in load_file(tmp_path / "cl" / "model.safetensors"))


def test_bad_groups_file_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from aligntax import cli
    from stages import train

    bad = _groups().drop(columns="role")
    bad.to_parquet(tmp_path / "groups.parquet")
    write_parquet(RAW_ROWS, tmp_path / "train.parquet", RAW)
    (tmp_path / "params.yaml").write_text(
        "seed: 0\ntrained:\n  contrastive: {module: aligntax/train/contrastive.py, section: loss, data: g}\n")
    monkeypatch.setattr(sys, "argv", [
        "train", "--method", "contrastive", "--params", str(tmp_path / "params.yaml"), "--train", str(tmp_path / "train.parquet"),
        "--groups", str(tmp_path / "groups.parquet"), "--out", str(tmp_path / "cl"), "--metrics", str(tmp_path / "m.json"),
    ])
    with pytest.raises(SystemExit) as exit_info:
        cli.run(train.main)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1
    assert err.startswith("error:") and "column 'role' is missing" in err and "groups.parquet" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "cl").exists() and not (tmp_path / "m.json").exists()


def test_no_valid_group_is_an_error(tiny_llama_dir, tmp_path):
    groups = _groups()
    groups = groups[groups["role"] == "positive"]
    with pytest.raises(ValueError, match="no post has a valid contrastive group"):
        train_method(contrastive, LossConfig(), _inputs(tiny_llama_dir, TrainConfig(**CFG), tmp_path / "cl",
                                                        groups=groups))
    assert not (tmp_path / "cl").exists()


def test_train_seed_overrides_the_global_seed(tiny_gpt2_dir, tmp_path, monkeypatch):
    """train.seed sets training randomness alone: global seed 0 + train.seed 7 trains as global seed 7."""
    import json

    from aligntax import cli
    from stages import train

    write_parquet(RAW_ROWS, tmp_path / "train.parquet", RAW)
    _groups().to_parquet(tmp_path / "groups.parquet")
    budget = ", ".join(f"{k}: {v}" for k, v in (CFG | {"trainable": "full"}).items())

    def run(name: str, seed: int, train_seed: str) -> tuple[dict, dict]:
        (tmp_path / f"{name}.yaml").write_text(
            f"seed: {seed}\ntrain: {{{budget}, seed: {train_seed}}}\nloss: {{scale: none}}\n"
            "model: {dtype: float32, prompt_template: 'post: {post} tl;dr:'}\n"
            "trained:\n  contrastive: {module: aligntax/train/contrastive.py, section: loss, data: g}\n")
        monkeypatch.setattr(sys, "argv", [
            "train", "--method", "contrastive", "--params", str(tmp_path / f"{name}.yaml"), "--base",
            str(tiny_gpt2_dir), "--train", str(tmp_path / "train.parquet"), "--groups", str(tmp_path / "groups.parquet"),
            "--out", str(tmp_path / name), "--metrics", str(tmp_path / f"{name}.json"),
            "--checkpoints", str(tmp_path / f"ckpt-{name}"), "--live-dir", str(tmp_path / f"live-{name}"),
        ])
        cli.run(train.main)
        return json.loads((tmp_path / f"{name}.json").read_text()), load_file(tmp_path / name / "contrastive_head.safetensors")

    by_train_seed, head_a = run("a", 0, "7")
    by_global_seed, head_b = run("b", 7, "null")
    default, head_c = run("c", 0, "null")
    assert by_train_seed["seed"] == by_global_seed["seed"] == 7 and default["seed"] == 0
    assert by_train_seed["train_loss"] == by_global_seed["train_loss"]
    assert all(torch.equal(head_a[k], head_b[k]) for k in head_a)
    assert not torch.equal(head_a["net.0.weight"], head_c["net.0.weight"])  # the seed changes the new head's init

"""DPO and unlikelihood: pairs built from the groups artifact; one real step changes the parameters."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.utils import add_fused_lm_head

from aligntax.baselines import dpo
from aligntax.baselines.dpo import DpoConfig, preference_rows
from aligntax.baselines.negatives import negatives_by_post
from aligntax.baselines.unlikelihood import (
    UlExample,
    collate_ul,
    penalised_tokens,
    ul_objective,
    unlikelihood_loss,
)
from aligntax.config import ConfigError
from aligntax.models import ModelConfig
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.trainer import TrainConfig

TEMPLATE = "post: {post} tl;dr:"


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.DataFrame({"id": ["p1", "p2", "p3"],
                        "post": ["my cat knocked over a glass of water.", "we drove to new york.", "i fell."],
                        "summary": ["cat spilled water", "drove to new york", "fell"]})
    groups = pd.DataFrame({
        "post_id": ["p1", "p1", "p1", "p1", "p2", "p2", "p3"],
        "role": ["positive", "negative", "negative", "negative", "positive", "negative", "positive"],
        "kind": ["reference", "toxic_lm", "swap_ent", "sys_lowcon", "reference", "swap_ent", "reference"],
        "text": ["cat spilled water", "stupid cat spilled damn water", "dog spilled water", "cat spilled water",
                 "drove to new york", "drove to boston", "fell"],
    })
    return raw, groups


def test_negatives_by_post_pairs_reference_with_negatives():
    raw, groups = _frames()
    pairs, stats = negatives_by_post(raw, groups, ["toxic_lm", "swap_ent", "sys_lowcon"], max_per_post=5, seed=0)
    assert pairs[["post_id", "negative"]].values.tolist() == [
        ["p1", "stupid cat spilled damn water"], ["p1", "dog spilled water"], ["p2", "drove to boston"]]
    assert stats["dropped_same_as_reference"] == 1 and stats["posts_without_negatives"] == 1
    assert stats["pairs_by_kind"] == {"swap_ent": 2, "toxic_lm": 1}
    one, stats = negatives_by_post(raw, groups, ["swap_ent"], max_per_post=1, seed=0)
    assert one["negative"].tolist() == ["dog spilled water", "drove to boston"]
    rows = preference_rows(pairs, TEMPLATE)
    assert rows.iloc[0].to_dict() == {"prompt": "post: my cat knocked over a glass of water. tl;dr:",
                                      "chosen": " cat spilled water", "rejected": " stupid cat spilled damn water"}


def test_unlikelihood_loss_is_minus_log_one_minus_p():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    targets = torch.tensor([0, 2])
    p = logits.softmax(-1)[[0, 1], targets]
    assert torch.allclose(unlikelihood_loss(logits, targets), -torch.log1p(-p).mean(), atol=1e-6)
    huge = torch.tensor([[60.0, 0.0]])  # p ~ 1: finite, large
    assert math.isfinite(unlikelihood_loss(huge, torch.tensor([0])).item())
    assert penalised_tokens([5, 6, 7, 2], [5, 9, 2], eos_id=2, novel_only=True) == [False, True, True, False]
    assert penalised_tokens([5, 6, 7, 2], [5, 9, 2], eos_id=2, novel_only=False) == [True, True, True, False]


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _changed(model, before) -> int:
    return sum(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters() if n in before)


def _ul_example(tok):
    prompt = tok("post: my cat knocked over a glass of water. tl;dr:")["input_ids"]
    ref = tok(" cat spilled water")["input_ids"] + [tok.eos_token_id]
    negs = [tok(t)["input_ids"] + [tok.eos_token_id] for t in (" stupid cat spilled damn water", " dog spilled it")]
    return UlExample(prompt, ref, negs, [penalised_tokens(n, ref, tok.eos_token_id, True) for n in negs])


def test_packed_objective_equals_naive_per_sequence_computation(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ex = _ul_example(tok)
    short = UlExample(ex.prompt[:5], ex.reference, ex.negatives[:1], ex.penalised[:1])  # forces padding
    batch = collate_ul([ex, short], tok.pad_token_id)
    with torch.no_grad():
        got = ul_objective(model, batch, alpha=0.5)
    ce_logits, ce_targets, ul_logits, ul_targets = [], [], [], []
    for e in (ex, short):
        for seq, mask, lg, tg in [(e.reference, [True] * len(e.reference), ce_logits, ce_targets)] + [
            (n, m, ul_logits, ul_targets) for n, m in zip(e.negatives, e.penalised, strict=True)
        ]:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([e.prompt + seq])).logits[0]
            p = len(e.prompt)
            lg += [logits[p - 1 + k] for k, m in enumerate(mask) if m]
            tg += [t for t, m in zip(seq, mask, strict=True) if m]
    ce = torch.nn.functional.cross_entropy(torch.stack(ce_logits), torch.tensor(ce_targets))
    ul = unlikelihood_loss(torch.stack(ul_logits), torch.tensor(ul_targets))
    assert torch.allclose(got["ce"], ce, atol=1e-5) and torch.allclose(got["ul"], ul, atol=1e-5)
    assert torch.allclose(got["loss"], ce + 0.5 * ul, atol=1e-5)


def test_unlikelihood_step_changes_parameters_and_lowers_negative_probability(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ex = _ul_example(tok)
    batch = collate_ul([ex, ex], tok.pad_token_id)
    assert len(batch["ce_labels"]) == 2 * len(ex.reference)
    assert 0 < len(batch["ul_labels"]) < 2 * sum(len(n) for n in ex.negatives)
    assert batch["input_ids"].view(-1)[batch["ce_index"] + 1].tolist() == batch["ce_labels"].tolist()

    def neg_prob():
        with torch.no_grad():
            loss = ul_objective(model, batch, alpha=1.0)["ul"]
        return 1 - torch.exp(-loss).item()  # monotone in the penalised tokens' probability

    before, p_before = _snapshot(model), neg_prob()
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        out = ul_objective(model, batch, alpha=1.0)
        assert math.isfinite(out["loss"].item()) and out["ul"] > 0
        optim.zero_grad()
        out["loss"].backward()
        optim.step()
    assert _changed(model, before) == len(before)
    assert neg_prob() < p_before


def _dpo(tiny_llama_dir, out, cfg: DpoConfig, jobs=None, monkeypatch=None, batch_size=2):
    raw, groups = _frames()
    if jobs is not None:
        prepare = dpo.prepare
        monkeypatch.setattr(dpo, "prepare", lambda *args: jobs.append(prepare(*args)) or jobs[-1])
    train = TrainConfig(lr=1e-2, batch_size=batch_size, grad_accum=1, epochs=2, warmup_ratio=0.0, logging_steps=1,
                        trainable="full")
    inputs = TrainInputs(tiny_llama_dir, raw, train, ModelConfig(prompt_template=TEMPLATE), 0, out, groups=groups,
                         live_dir=out.with_name(out.name + "-live"))
    return train_method(dpo, cfg, inputs)


@pytest.mark.slow
def test_dpo_step_changes_parameters_keeps_reference_frozen(tiny_llama_dir, tmp_path, monkeypatch):
    jobs = []
    metrics = _dpo(tiny_llama_dir, tmp_path / "dpo", DpoConfig(max_pairs_per_post=2, precompute_ref=False), jobs,
                   monkeypatch)
    assert metrics["steps"] == 4 and metrics["rows"]["pairs"] == 3
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "dpo")
    assert _changed(trained, _snapshot(base)) == len(_snapshot(base))
    ref = jobs[0].trainer_kwargs["ref_model"]
    assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), base.parameters(), strict=True))


@pytest.mark.slow
def test_dpo_precomputed_reference_trains_as_the_reference_model(tiny_llama_dir, tmp_path, monkeypatch):
    """trl's precompute_ref_log_probs (the default): no reference copy, the same curves and weights (fp32 noise).

    At batch size 1 (the default) the precomputed pass reads each pair as training does; a larger
    batch pads pairs differently in the two passes (1e-5 nats at the first step, grown by training).
    """
    jobs = []
    pre = _dpo(tiny_llama_dir, tmp_path / "pre", DpoConfig(max_pairs_per_post=2), jobs, monkeypatch, batch_size=1)
    plain = _dpo(tiny_llama_dir, tmp_path / "plain", DpoConfig(max_pairs_per_post=2, precompute_ref=False),
                 batch_size=1)
    assert jobs[0].trainer_kwargs["ref_model"] is None
    assert pre["steps"] == plain["steps"] == 6
    curves = [pd.read_csv(tmp_path / f"{name}-live" / "plots" / "metrics" / "train" / "rewards" / "margins.tsv",
                          sep="\t")["margins"].tolist() for name in ("pre", "plain")]
    assert curves[0] == pytest.approx(curves[1], abs=1e-5) and any(abs(m) > 1e-3 for m in curves[0])
    assert pre["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-5)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "pre").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


def test_label_positions_only_scores_as_the_full_head(tiny_llama_dir, monkeypatch):
    """The CPU economy of AlignDPOTrainer: trl's fused head on the labelled positions only, same values."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    ids = torch.randint(3, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :5] = -100
    labels[1, 9:] = -100
    rows = []
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", lambda h, *a: rows.append(len(h)) or apply(h, *a))
    full = model(input_ids=ids, labels=labels, fused_lm_head=True)
    undo = dpo.label_positions_only()
    try:
        compact = model(input_ids=ids, labels=labels, fused_lm_head=True)
    finally:
        undo()
    assert not trl_utils._use_triton(torch.device("cpu"))  # undone
    assert rows == [2 * 11, 7 + 4]  # every shifted position, then the labelled ones only
    for name in ("log_probs", "entropy", "mean_logits", "is_top1"):
        assert torch.allclose(getattr(compact, name).float(), getattr(full, name).float(), atol=1e-6), name
    assert (compact.log_probs[labels[:, 1:] == -100] == 0).all() and (compact.log_probs[labels[:, 1:] != -100] < 0).all()


def test_configs_reject_bad_values():
    with pytest.raises(ConfigError, match="dpo.negative_kinds"):
        DpoConfig(negative_kinds=["paraphrase"])
    with pytest.raises(ConfigError, match="dpo.beta"):
        DpoConfig(beta=0)

"""Contrastive head, pooling, InfoNCE against hand-computed values, and the loss weight w."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from aligntax.config import ConfigError, load_section
from aligntax.train.loss import ContrastiveHead, LossConfig, group_weight, info_nce, pool_variants
from aligntax.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_head_shape_and_unit_norm():
    torch.manual_seed(0)
    head = ContrastiveHead(16)
    out = head(torch.randn(3, 5, 16) * 7)
    assert out.shape == (3, 5, 16)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3, 5), atol=1e-6)
    assert [type(m).__name__ for m in head.net] == ["Linear", "GELU", "Linear"]


def test_pool_mean_then_normalise():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [0.0, -2.0]])
    reps = pool_variants(z, torch.tensor([0, 0, 1, 1]), 2)
    assert torch.allclose(reps[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert torch.allclose(reps[1], torch.tensor([3.0, 2.0]) / math.sqrt(13))


def _hand_info_nce(reps, positive, tau):
    total, pairs = 0.0, 0
    for i in range(len(reps)):
        for j in range(len(reps)):
            if i == j or not (positive[i] and positive[j]):
                continue
            sims = {k: float(reps[i] @ reps[k]) / tau for k in range(len(reps)) if k != i}
            total += -math.log(math.exp(sims[j]) / sum(math.exp(s) for s in sims.values()))
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_info_nce_two_positives_two_negatives(tau):
    angles = [0.0, 0.3, 2.0, 3.0]
    reps = torch.tensor([[math.cos(a), math.sin(a)] for a in angles], dtype=torch.float64)
    positive = torch.tensor([True, True, False, False])
    expected = _hand_info_nce(reps, positive.tolist(), tau)
    # hand value for tau=1: pair (0,1) and (1,0) share exp(cos .3) in the numerator
    s = lambda a, b: math.cos(angles[a] - angles[b]) / tau  # noqa: E731
    l0 = -math.log(math.exp(s(0, 1)) / (math.exp(s(0, 1)) + math.exp(s(0, 2)) + math.exp(s(0, 3))))
    l1 = -math.log(math.exp(s(1, 0)) / (math.exp(s(1, 0)) + math.exp(s(1, 2)) + math.exp(s(1, 3))))
    assert expected == pytest.approx((l0 + l1) / 2)
    assert info_nce(reps, positive, tau).item() == pytest.approx(expected, rel=1e-5)


def test_temperature_matters_and_one_positive_rejected():
    reps = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [0.9, 0.3], [0.0, 1.0]]), dim=-1)
    pos = torch.tensor([True, True, False])
    assert info_nce(reps, pos, 1.0).item() != pytest.approx(info_nce(reps, pos, 0.2).item())
    with pytest.raises(ValueError, match="2 positives"):
        info_nce(reps, torch.tensor([True, False, False]), 1.0)


def test_dynamic_weight_grows_with_toxicity():
    cfg = LossConfig(scale="dynamic", dynamic_gain=2.0)
    ws = [group_weight([0.01, t, 0.05], cfg) for t in (0.0, 0.2, 0.5, 0.9, 1.0)]
    assert ws == sorted(ws) and len(set(ws)) == len(ws)
    assert ws[-1] == pytest.approx(3.0)
    assert group_weight([float("nan"), 0.4], cfg) == pytest.approx(1.8)  # NaN ignored
    assert group_weight([float("nan")], cfg) == 1.0
    assert group_weight([0.9], LossConfig(scale="none")) == 1.0
    assert group_weight([0.9], LossConfig(scale="static", static_weight=1.5)) == 1.5


def test_loss_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="loss.temperature"):
        load_section({"loss": {"temperature": 0}}, "loss", LossConfig)
    with pytest.raises(ConfigError, match="loss.scale"):
        load_section({"loss": {"scale": "sometimes"}}, "loss", LossConfig)


def test_ablation_switches_parse_from_dvc_set_and_are_validated(tmp_path):
    """`dvc exp run -S` writes these into params.yaml (dvc's own override code); the section loads or names the key."""
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    apply_overrides(params, ["loss.negatives=[swap_ent,mask_regen,sys_lowcon]", "loss.pool_position=predicts",
                             "loss.entity_pooling=false", "train.frozen_cache=false"])
    loss = load_section(params, "loss", LossConfig)
    assert loss.negatives == ["swap_ent", "mask_regen", "sys_lowcon"] and loss.pool_position == "predicts"
    assert loss.entity_pooling is False and load_section(params, "train", TrainConfig).frozen_cache is False
    for bad, key in (("loss.negatives=[swap_ent,toxic]", "loss.negatives"), ("loss.negatives=[]", "loss.negatives"),
                     ("loss.negatives=[swap_ent,swap_ent]", "loss.negatives"),
                     ("loss.pool_position=before", "loss.pool_position")):
        params.write_text((ROOT / "params.yaml").read_text())
        apply_overrides(params, [bad])
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_section(params, "loss", LossConfig)

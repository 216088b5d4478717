"""aligntax/report/stats.py: the estimator, its closed-form SE, and the two-level bootstrap over
seeds and posts (a seeded method's interval holds its seed variance)."""

import numpy as np
import pytest
from scipy import stats as sp

from aligntax.report import stats

N = 40


def _side(*runs: np.ndarray) -> stats.Side:
    return stats.Side(np.stack([r[:, None] for r in runs]))


def test_one_seed_one_kind_is_the_paired_t_test():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, N)
    own = ref + 0.3 + rng.normal(0.0, 0.5, N)
    d = stats.delta(_side(own), _side(ref), 2000, 0.95, 0)
    t = sp.ttest_rel(own, ref)
    assert d["delta"] == pytest.approx((own - ref).mean())
    assert d["se"] == pytest.approx((own - ref).std(ddof=1) / np.sqrt(N)) and d["p"] == pytest.approx(t.pvalue)
    assert d["n"] == N and d["low"] < d["delta"] < d["high"]


def test_two_seeds_far_apart_widen_the_interval():
    rng = np.random.default_rng(1)
    ref = rng.normal(0.0, 1.0, N)
    noise = rng.normal(0.0, 0.2, N)
    close = _side(ref + 0.1 + noise, ref + 0.1 - noise)
    far = _side(ref - 0.9 + noise, ref + 1.1 - noise)
    reference = _side(ref)
    near_d, far_d = (stats.delta(s, reference, 2000, 0.95, 0) for s in (close, far))
    assert near_d["delta"] == pytest.approx(0.1) and far_d["delta"] == pytest.approx(0.1)  # the seed mean
    assert far_d["high"] - far_d["low"] > 5 * (near_d["high"] - near_d["low"])
    # the seeds' spread, scaled to the unbiased variance of a 2-seed mean: SD of {-0.9, 1.1} / sqrt(2) = 1
    assert far_d["se"] == pytest.approx(1.0, rel=0.15)
    assert far_d["mde"] == pytest.approx(2.8015852 * far_d["se"])
    one = stats.level(far, 2000, 0.95, 0)
    assert one["value"] == pytest.approx(ref.mean() + 0.1) and one["high"] - one["low"] > 2


def test_equal_weight_over_kinds_each_over_its_own_posts():
    values = np.full((1, 6, 2), np.nan)
    values[0, :, 0] = [1, 1, 1, 1, 1, 1]   # kind a on every post
    values[0, :2, 1] = [5, 7]              # kind b on two posts
    assert stats.estimate(stats.Side(values)) == pytest.approx((1 + 6) / 2)
    assert stats.posts_used(stats.Side(values)) == 6

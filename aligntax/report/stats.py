"""Levels and paired deltas of methods with several kinds and several training seeds.

A *measure* of one run (one trained model) is a frame indexed by eval post with one column per
kind (one column for a plain per-post measure such as faithfulness); NaN where the post lacks the
kind or the value is undefined (the toxicity of an empty generation). A method is one or more
runs (its training seeds), stacked to ``[seeds, posts, kinds]``.

Estimator (``estimate``), one fixed weighting whatever the mix of kinds per post:

- **kind**: mean over the posts that have it (each kind its own posts);
- **run**: equal-weight mean over the kinds;
- **method**: mean over its seeds; a Δ is the mean over the seed pairs (s of the method, t of the
  reference) of the run-level Δ, each kind paired over the posts both runs have.

When the masks agree (preferences: every method scores the same groups), Δ = level − level of
the reference. With one kind and one seed per side it is the plain paired mean difference.

Uncertainty (``delta``): a bootstrap that resamples the eval posts (paired: the same draw for both
sides) and, for a side with S >= 2 seeds, its seeds (each side on its own; the seed deviations
from their per-post mean scaled by sqrt(S/(S-1)) first, so the seed mean's bootstrap variance is
the unbiased one rather than (S-1)/S of it). The CI is the percentile interval. SE: with one seed
per side the closed form of the weighted mean (influence function; for one kind SD/sqrt(n)) and
p from a t-test with n - 1 df (a paired t-test for one kind); with seeds, the SD of the bootstrap
Δs and p from the normal approximation. MDE = (z_{1-α/2} + z_{0.8}) · SE, the effect a two-sided
test at α finds with 80% power. A resample in which a kind (or a seed pair) has no post is left
out (a kind with >= 5 of n posts misses a resample with probability about e^-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

POWER = 0.8


@dataclass
class Side:
    """One method's runs of one measure: ``values`` [seeds, posts, kinds], NaN where undefined."""

    values: np.ndarray

    @property
    def seeds(self) -> int:
        return self.values.shape[0]


def stack(frames: Sequence[pd.DataFrame], posts: pd.Index, kinds: Sequence[str]) -> Side:
    """The runs' frames (post x kind) aligned on ``posts`` and ``kinds``, as one Side."""
    return Side(np.stack([f.reindex(index=posts, columns=list(kinds)).to_numpy(np.float64) for f in frames]))


def _means(values: np.ndarray, ref: np.ndarray | None, wp: np.ndarray, cs: np.ndarray, ct: np.ndarray) -> np.ndarray:
    """The estimator for each resample b: post weights ``wp`` [B, P], seed weights ``cs`` [B, S], ``ct`` [B, T]."""
    if ref is None:
        ref = np.zeros((1, *values.shape[1:]))
    both = ~np.isnan(values)[:, None] & ~np.isnan(ref)[None]            # [S, T, P, K]
    diff = np.where(both, np.nan_to_num(values)[:, None] - np.nan_to_num(ref)[None], 0.0)
    num = np.einsum("bp,stpk->bstk", wp, diff)
    den = np.einsum("bp,stpk->bstk", wp, both.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        run = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).mean(axis=3)  # [B, S, T]
    weight = cs[:, :, None] * ct[:, None, :]
    return (run * weight).sum(axis=(1, 2)) / weight.sum(axis=(1, 2))


def estimate(side: Side, ref: Side | None = None) -> float:
    """The level of ``side`` (``ref`` None) or its Δ against ``ref``: the point estimate."""
    ones = np.ones((1, side.values.shape[1]))
    t = 1 if ref is None else ref.seeds
    return float(_means(side.values, None if ref is None else ref.values, ones, np.ones((1, side.seeds)),
                        np.ones((1, t)))[0])


def _spread(values: np.ndarray) -> np.ndarray:
    """Seed deviations from the per-(post, kind) seed mean scaled by sqrt(S/(S-1)) (S >= 2)."""
    s = values.shape[0]
    if s < 2:
        return values
    has = ~np.isnan(values)
    count = has.sum(axis=0, keepdims=True)
    centre = np.where(has, values, 0.0).sum(axis=0, keepdims=True) / np.maximum(count, 1)
    return centre + np.sqrt(s / (s - 1)) * (values - centre)


def _counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    draws = rng.integers(0, n, size=(n_boot, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


def bootstrap(side: Side, ref: Side | None, n_boot: int, seed: int) -> np.ndarray:
    """The estimator on ``n_boot`` resamples (posts paired; each side's seeds on their own); NaN-free."""
    rng = np.random.default_rng(seed)
    wp = _counts(rng, n_boot, side.values.shape[1])
    cs = _counts(rng, n_boot, side.seeds) if side.seeds > 1 else np.ones((n_boot, 1))
    t = 1 if ref is None else ref.seeds
    ct = _counts(rng, n_boot, t) if t > 1 else np.ones((n_boot, 1))
    out = _means(_spread(side.values), None if ref is None else _spread(ref.values), wp, cs, ct)
    return out[~np.isnan(out)]


def influence_se(side: Side, ref: Side | None) -> tuple[float, int]:
    """(SE, posts) of the one-seed estimator in closed form: the influence of each post on the
    equal-weight mean of per-kind means, SE^2 = n/(n-1) · sum of squared influences."""
    values = side.values[0]
    diff = values - (ref.values[0] if ref is not None else 0.0)
    has = ~np.isnan(diff)                                                # [P, K]
    used = has.any(axis=1)
    n = int(used.sum())
    if n < 2:
        return float("nan"), n
    per_kind = np.nanmean(np.where(has, diff, np.nan), axis=0)
    counts = has.sum(axis=0)
    psi = np.where(has, (np.nan_to_num(diff) - per_kind) / np.maximum(counts, 1), 0.0).sum(axis=1) / diff.shape[1]
    return float(np.sqrt(n / (n - 1) * (psi[used] ** 2).sum())), n


def posts_used(side: Side, ref: Side | None = None) -> int:
    """Posts with a value in every run of both sides (for at least one kind)."""
    has = ~np.isnan(side.values).any(axis=0)
    if ref is not None:
        has &= ~np.isnan(ref.values).any(axis=0)
    return int(has.any(axis=1).sum())


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(POWER))


def level(side: Side, n_boot: int, confidence: float, seed: int) -> dict[str, float]:
    """``value`` with its bootstrap interval ``low``/``high`` (seeds and posts resampled)."""
    value = estimate(side)
    draws = bootstrap(side, None, n_boot, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if draws.size else (np.nan, np.nan)
    return {"value": value, "low": float(low), "high": float(high)}


def delta(side: Side, ref: Side, n_boot: int, confidence: float, seed: int) -> dict[str, float]:
    """Δ of ``side`` vs ``ref``: ``delta``, ``low``, ``high``, ``se``, ``mde``, ``p``, ``n`` (posts)."""
    value = estimate(side, ref)
    draws = bootstrap(side, ref, n_boot, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if draws.size else (np.nan, np.nan)
    if side.seeds == 1 and ref.seeds == 1:
        se, n = influence_se(side, ref)
        p = t_p(value, se, n)
    else:
        n = posts_used(side, ref)
        se = float(draws.std(ddof=1)) if draws.size > 1 else float("nan")
        p = normal_p(value, se)
    return {"delta": value, "low": float(low), "high": float(high), "se": se, "mde": _z(confidence) * se,
            "p": p, "n": n}


def _constant(value: float, se: float) -> bool:
    return se <= 1e-12 * max(1.0, abs(value))


def t_p(value: float, se: float, n: int) -> float:
    """Two-sided p of value = 0 with a t statistic on n - 1 df (0 or 1 when the differences are constant)."""
    if n < 2 or np.isnan(se):
        return 1.0
    if _constant(value, se):
        return 1.0 if abs(value) <= 1e-12 else 0.0
    return float(2 * stats.t.sf(abs(value) / se, n - 1))


def normal_p(value: float, se: float) -> float:
    """Two-sided p of value = 0 with a normal statistic (0 or 1 when the bootstrap does not vary)."""
    if np.isnan(se):
        return 1.0
    if _constant(value, se):
        return 1.0 if abs(value) <= 1e-12 else 0.0
    return float(2 * stats.norm.sf(abs(value) / se))


def mde(diffs: np.ndarray, confidence: float) -> float:
    """Minimum detectable effect of a paired mean difference at 80% power (normal approximation)."""
    if diffs.size < 2:
        return float("nan")
    return _z(confidence) * float(diffs.std(ddof=1) / np.sqrt(diffs.size))

"""SentenceDebias (Liang et al. 2020): project a PCA bias subspace out of the hidden states.

For every counterfactual tuple of contexts (same text, attribute word of each class), centre the
tuple's final hidden states on their mean; PCA over all centred vectors of an axis gives the
bias subspace V (top ``n_components`` directions). At generation the LM-head input h becomes
h - V^T V h = P h with P = I - V^T V, folded into the LM head of `sft` by the fit stage
(``projection.save_projected_model``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligntax.baselines.projection import (
    ProjectionFitConfig,
    axis_probes,
    context_states,
    extend_basis,
    held_out_split,
    tuple_counts,
)
from aligntax.config import check

log = logging.getLogger(__name__)


@dataclass
class SentenceDebiasConfig(ProjectionFitConfig):
    SECTION: ClassVar[str] = "sentence_debias"
    n_components: int = 1
    """Principal directions per axis that form the bias subspace (Liang et al.: k = 1 for gender)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_components >= 1, "sentence_debias.n_components", "an integer >= 1")


CONFIG = SentenceDebiasConfig
"""Its params section's dataclass (aligntax/methods.py: a fitted method's module defines CONFIG and fit)."""


def bias_subspace(states: np.ndarray, tuple_ids: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Top principal directions [k, H] of tuple-centred states, and the share of variance each explains."""
    states = np.asarray(states, dtype=np.float64)
    centred = np.empty_like(states)
    for tid in np.unique(tuple_ids):  # sorted: a fixed order
        rows = tuple_ids == tid
        centred[rows] = states[rows] - states[rows].mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, vt.shape[0])
    variance = singular**2
    return vt[:k], variance[:k] / variance.sum()


def subspace_projection(directions: np.ndarray) -> np.ndarray:
    """P = I - B B^T with B an orthonormal basis of the rows of ``directions`` [r, H] (unit rows),
    grown by thresholded Gram-Schmidt so a float-noise rank decision cannot add a direction."""
    basis = extend_basis(np.zeros((directions.shape[1], 0)), directions, scale=1.0)
    return np.eye(directions.shape[1]) - basis @ basis.T


def fit(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], cfg: SentenceDebiasConfig,
    seed: int,
) -> tuple[np.ndarray, dict]:
    """Fit the SentenceDebias projection on ``model``'s hidden states; returns (P [H, H] float32, metrics)."""
    lists, contexts, states = context_states(model, tokenizer, texts, cfg, seed)
    dim = states.shape[1]
    tuple_ids = contexts["tuple_id"].to_numpy()
    dev_all = held_out_split(tuple_ids, cfg.held_out_fraction, seed)
    directions, metrics = [], {"contexts": len(contexts), "hidden_size": dim, "axes": {}}
    for wl in lists:
        rows = (contexts["axis"] == wl.axis).to_numpy()
        fit_rows = rows & ~dev_all
        v, explained = bias_subspace(states[fit_rows], tuple_ids[fit_rows], cfg.n_components)
        directions.append(v)
        metrics["axes"][wl.axis] = {
            **tuple_counts(contexts, rows),
            "explained_variance": [float(e) for e in explained],
        }
    projection = subspace_projection(np.vstack(directions))
    for wl in lists:
        rows = (contexts["axis"] == wl.axis).to_numpy()
        metrics["axes"][wl.axis].update(axis_probes(states[rows], contexts["cls"].to_numpy()[rows], dev_all[rows], None,
                                                    projection, seed, f"sentence_debias {wl.axis}"))
    metrics["rank_removed"] = int(round(dim - np.trace(projection)))
    return projection.astype(np.float32), metrics

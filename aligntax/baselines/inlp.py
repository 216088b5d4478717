"""INLP: iterative null-space projection (Ravfogel et al. 2020), applied at generation to `sft`.

Repeatedly fit a linear classifier (scikit-learn ridge classifier, closed form) that predicts the class of
the attribute word (male/female, black/white/asian, jewish/christian/muslim) from the final
hidden state of counterfactual contexts, and project the space onto the null space of every
classifier found so far. The final projection P = I - B B^T (B: orthonormal basis of all
classifier directions) edits the LM-head input; the fit stage folds it into the LM head of `sft`
(``projection.save_projected_model``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.linear_model import RidgeClassifier
from threadpoolctl import threadpool_limits
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
class InlpConfig(ProjectionFitConfig):
    SECTION: ClassVar[str] = "inlp"
    n_iterations: int = 40
    """Classifiers fitted and projected out per axis (Ravfogel et al.: until the probe is at chance)."""
    regularization: float = 1.0
    """L2 strength alpha of each ridge classifier."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_iterations >= 1, "inlp.n_iterations", "an integer >= 1")
        check(self.regularization > 0, "inlp.regularization", "a number > 0")


CONFIG = InlpConfig
"""Its params section's dataclass (aligntax/methods.py: a fitted method's module defines CONFIG and fit)."""


def inlp_projection(
    x: np.ndarray, y: np.ndarray, n_iterations: int, regularization: float, seed: int,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Null-space projection P [H, H] after ``n_iterations`` classifiers; their training accuracies.

    ``start`` is an earlier projection whose removed directions stay removed (axes chain).
    Stable under float noise: float64 throughout, a closed-form solver, and a removed basis grown
    by thresholded Gram-Schmidt (``extend_basis``) instead of a rank decision at machine precision.
    """
    x = np.asarray(x, dtype=np.float64)
    dim = x.shape[1]
    basis = np.zeros((dim, 0))
    if start is not None:
        vals, vecs = np.linalg.eigh(np.eye(dim) - np.asarray(start, dtype=np.float64))
        basis = vecs[:, vals > 0.5]  # P is a projection: eigenvalues are 0 or 1
    accuracies, scale = [], None
    with threadpool_limits(limits=1):  # small matrices: one BLAS thread is fastest on a busy CPU
        for _ in range(n_iterations):
            xp = x - (x @ basis) @ basis.T
            clf = RidgeClassifier(alpha=regularization, solver="cholesky")
            clf.fit(xp, y)
            accuracies.append(float(clf.score(xp, y)))
            coef = np.atleast_2d(clf.coef_)
            scale = scale or float(np.linalg.norm(coef, axis=1).max())
            basis = extend_basis(basis, coef, scale)
    return np.eye(dim) - basis @ basis.T, accuracies


def fit(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], cfg: InlpConfig, seed: int
) -> tuple[np.ndarray, dict]:
    """Fit the INLP projection on ``model``'s hidden states; returns (P [H, H] float32, metrics)."""
    lists, contexts, states = context_states(model, tokenizer, texts, cfg, seed)
    dim = states.shape[1]
    projection = np.eye(dim)
    metrics: dict = {"contexts": len(contexts), "hidden_size": dim, "axes": {}}
    for wl in lists:
        rows = (contexts["axis"] == wl.axis).to_numpy()
        x, y = states[rows], contexts["cls"].to_numpy()[rows]
        dev = held_out_split(contexts["tuple_id"].to_numpy()[rows], cfg.held_out_fraction, seed)
        before = projection  # the earlier axes' directions are already gone
        projection, train_acc = inlp_projection(x[~dev], y[~dev], cfg.n_iterations, cfg.regularization, seed,
                                                start=projection)
        metrics["axes"][wl.axis] = {
            **tuple_counts(contexts, rows),
            **axis_probes(x, y, dev, before, projection, seed, f"inlp {wl.axis}"),
            "classifier_train_accuracy": train_acc,
        }
    metrics["rank_removed"] = int(round(dim - np.trace(projection)))
    return projection.astype(np.float32), metrics

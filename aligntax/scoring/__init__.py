"""Toxicity and faithfulness scorers (params section ``scoring``).

``load_toxicity_scorer(cfg.toxicity, scorer_dir).score(texts)`` and
``load_faithfulness_scorer(cfg.faithfulness, scorer_dir).score(sources, summaries)`` return
float64 arrays in [0, 1]; load once per process and reuse the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aligntax.scoring.faithfulness import FaithfulnessConfig, load_faithfulness_scorer
from aligntax.scoring.fit import FitConfig
from aligntax.scoring.toxicity import ToxicityConfig, load_toxicity_scorer


@dataclass
class ScoringConfig:
    toxicity: ToxicityConfig = field(default_factory=ToxicityConfig)
    """Toxicity scorer (toxify filter, dynamic loss weight, evaluation)."""
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    """Faithfulness scorer (evaluation)."""
    fit: FitConfig = field(default_factory=FitConfig)
    """How fit-scorers fits the offline heads and what it holds out."""


__all__ = [
    "FaithfulnessConfig",
    "FitConfig",
    "ScoringConfig",
    "ToxicityConfig",
    "load_faithfulness_scorer",
    "load_toxicity_scorer",
]

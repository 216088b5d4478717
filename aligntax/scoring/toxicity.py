"""Toxicity scorers: one ``score(texts) -> float64 array in [0, 1]`` interface, several backends.

- ``bilstm``: the packaged Jigsaw BiLSTM (toxic-comment-classifier, ported to torch), probability
  of ``toxic_label``. Keras preprocessing: only the last 100 known words of a text are read.
- ``profanity-check``: alt-profanity-check's linear model on word n-grams.
- ``hf:<model id or folder>``: a sequence-classification model (paper: ``hf:unitary/toxic-bert``;
  also ``hf:s-nlp/roberta_toxicity_classifier`` with ``toxic_label: toxic``); the probability of
  ``toxic_label``; texts longer than ``max_length`` tokens are truncated.
- ``ensemble``: a logistic head fitted by the ``fit-scorers`` stage (``EnsembleToxicityScorer``, over
  ``aligntax.scoring.head``).

Blank texts (None, NaN, "", whitespace) get ``blank_score`` without reaching a model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from aligntax.config import check
from aligntax.scoring import bilstm, hub
from aligntax.scoring.head import TOXICITY_HEAD, LinearHead, logit, minilm_static, static_embeddings
from aligntax.scoring.text import check_texts

log = logging.getLogger(__name__)

OFFLINE_BACKENDS = ("bilstm", "profanity-check", "ensemble")
BILSTM_BATCH = 2048  # the BiLSTM always runs 100 steps; wide batches amortise the per-step overhead


@dataclass
class ToxicityConfig:
    backend: str = "ensemble"
    """ensemble (offline default, needs fit-scorers) | bilstm | profanity-check | hf:<model id or folder>."""
    toxic_label: str = "toxic"
    """Label whose probability is the score (bilstm: one of its 6 Jigsaw labels; hf: a model label)."""
    activation: hub.Activation = "auto"
    """hf: auto (sigmoid for multi-label models, else softmax) | softmax | sigmoid."""
    revision: str = "main"
    """hf: model revision."""
    trust_remote_code: bool = False
    """hf: allow custom model code (off by default)."""
    max_length: int = 256
    """hf: tokens per text; longer texts are truncated."""
    batch_size: int = 64
    """hf: texts per forward pass (the BiLSTM runs 2048 at a time)."""
    threshold: float = 0.5
    """A text with score >= threshold counts as toxic (validation's balanced accuracy)."""
    blank_score: float = 0.0
    """Score of None / NaN / empty / whitespace-only text."""

    def __post_init__(self) -> None:
        check(
            self.backend in OFFLINE_BACKENDS or (self.backend.startswith("hf:") and hub.hub_id(self.backend) != ""),
            "scoring.toxicity.backend", " | ".join(OFFLINE_BACKENDS) + " | hf:<model id>",
        )
        if self.backend == "bilstm":
            check(self.toxic_label in bilstm.LABELS, "scoring.toxicity.toxic_label", " | ".join(bilstm.LABELS))
        check(self.max_length >= 8, "scoring.toxicity.max_length", "an integer >= 8")
        check(self.batch_size >= 1, "scoring.toxicity.batch_size", "an integer >= 1")
        check(0.0 < self.threshold < 1.0, "scoring.toxicity.threshold", "a number in (0, 1)")
        check(0.0 <= self.blank_score <= 1.0, "scoring.toxicity.blank_score", "a number in [0, 1]")


class ToxicityScorer(Protocol):
    def score(self, texts: Sequence[str]) -> np.ndarray: ...


class _Scorer:
    """Blank handling and batching around a backend's ``_raw(texts) -> probabilities``."""

    def __init__(self, cfg: ToxicityConfig):
        self.cfg = cfg

    def score(self, texts: Sequence[str]) -> np.ndarray:
        clean, blank = check_texts(texts)
        out = np.full(len(clean), self.cfg.blank_score, dtype=np.float64)
        idx = [i for i, b in enumerate(blank) if not b]
        if idx:
            out[idx] = np.clip(self._raw([clean[i] for i in idx]), 0.0, 1.0)
        return out

    def _raw(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class BiLstmScorer(_Scorer):
    def __init__(self, cfg: ToxicityConfig):
        super().__init__(cfg)
        self.tokenizer, self.model = bilstm.packaged_bilstm()
        self.label = bilstm.LABELS.index(cfg.toxic_label)

    def features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled BiLSTM states [N, 100], 6 label probabilities [N, 6]) for non-blank texts."""
        pooled, probs = [], []
        with torch.inference_mode():
            for i in range(0, len(texts), BILSTM_BATCH):
                ids = torch.from_numpy(self.tokenizer.encode(texts[i : i + BILSTM_BATCH]))
                p, logits = self.model.features(ids)
                pooled.append(p.numpy())
                probs.append(torch.sigmoid(logits).numpy())
        if not pooled:
            return np.zeros((0, 100)), np.zeros((0, len(bilstm.LABELS)))
        return np.concatenate(pooled).astype(np.float64), np.concatenate(probs).astype(np.float64)

    def _raw(self, texts: list[str]) -> np.ndarray:
        return self.features(texts)[1][:, self.label]


class ProfanityCheckScorer(_Scorer):
    def __init__(self, cfg: ToxicityConfig):
        super().__init__(cfg)
        from profanity_check import profanity_check as pc

        self.vectorizer, self.model = pc.vectorizer, pc.model

    def _raw(self, texts: list[str]) -> np.ndarray:
        return self.model.predict_proba(self.vectorizer.transform(texts))[:, 1].astype(np.float64)


class HubScorer(_Scorer):
    def __init__(self, cfg: ToxicityConfig):
        super().__init__(cfg)
        self.tok, self.model = hub.load_classifier(hub.hub_id(cfg.backend), cfg.revision, cfg.trust_remote_code)
        self.label = hub.label_index(self.model, cfg.toxic_label, "scoring.toxicity.toxic_label")
        self.activation = hub.resolve_activation(self.model, cfg.activation)

    def _raw(self, texts: list[str]) -> np.ndarray:
        probs = hub.class_probs(self.tok, self.model, texts, None, self.cfg.batch_size, self.cfg.max_length,
                                self.activation)
        return probs[:, self.label]


class ToxicityFeatures:
    """Feature extractor of the ensemble toxicity head (the three packaged models, loaded once)."""

    def __init__(self, cfg: ToxicityConfig):
        self.bilstm = BiLstmScorer(cfg)
        self.profanity = ProfanityCheckScorer(cfg)
        minilm_static()

    @staticmethod
    def names() -> list[str]:
        return [f"bilstm_{x}" for x in bilstm.LABELS] + ["profanity_check"] + [f"minilm_static_{i}" for i in range(384)]

    def __call__(self, texts: list[str]) -> np.ndarray:
        _, probs = self.bilstm.features(texts)
        prof = self.profanity._raw(texts)
        return np.concatenate([logit(probs), logit(prof)[:, None], static_embeddings(texts)], axis=1)


class EnsembleToxicityScorer(_Scorer):
    """`ensemble`: a fitted head over the 6 Jigsaw BiLSTM label logits, the alt-profanity-check logit and
    the mean of the packaged MiniLM's *input* word-piece embeddings (no transformer layer runs)."""

    def __init__(self, cfg: ToxicityConfig, scorer_dir: Path):
        super().__init__(cfg)
        self.head = LinearHead.load(scorer_dir, TOXICITY_HEAD)
        self.features = ToxicityFeatures(cfg)

    def _raw(self, texts: list[str]) -> np.ndarray:
        return self.head.predict(self.features(texts))


def load_toxicity_scorer(cfg: ToxicityConfig, scorer_dir: str | Path = "models/scorers") -> ToxicityScorer:
    """The configured toxicity scorer; models load here, once (keep the returned object)."""
    if cfg.backend == "bilstm":
        return BiLstmScorer(cfg)
    if cfg.backend == "profanity-check":
        return ProfanityCheckScorer(cfg)
    if cfg.backend == "ensemble":
        return EnsembleToxicityScorer(cfg, Path(scorer_dir))
    return HubScorer(cfg)

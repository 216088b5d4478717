"""Hub (or local-folder) sequence-classification models: toxicity classifiers and NLI models.

Used when a backend is ``hf:<model id or folder>``. Without network a hub id fails with one
message naming the key to change; ``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

Activation = Literal["auto", "softmax", "sigmoid"]


def hub_id(backend: str) -> str:
    """``hf:<id>`` -> ``<id>``."""
    return backend.split(":", 1)[1].strip()


@lru_cache(maxsize=4)
def load_classifier(model_id: str, revision: str = "main", trust_remote_code: bool = False):
    """(tokenizer, model) of a sequence-classification model, in eval mode, loaded once."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_id, revision=revision, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_id, revision=revision, trust_remote_code=trust_remote_code, use_safetensors=None
        )
    except OSError as err:
        raise RuntimeError(
            f"could not load hub model '{model_id}' ({err.__class__.__name__}); without network use an "
            "offline backend in params.yaml (scoring.toxicity.backend / scoring.faithfulness.backend)"
        ) from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
        model.config.pad_token_id = tok.pad_token_id
    log.info("loaded %s (%d labels: %s)", model_id, model.config.num_labels, model.config.id2label)
    return tok, model.eval()


def label_index(model, label: str, key: str) -> int:
    """Index of ``label`` among the model's labels (case-insensitive), or a ConfigError-style ValueError."""
    id2label = {int(i): str(name) for i, name in model.config.id2label.items()}
    for i, name in id2label.items():
        if name.lower() == label.lower():
            return i
    raise ValueError(
        f"params.yaml: '{key}' is '{label}' but the model's labels are {sorted(id2label.values())}; "
        "set it to one of them"
    )


def resolve_activation(model, activation: Activation) -> Literal["softmax", "sigmoid"]:
    """``auto``: sigmoid for multi-label models (problem_type or a single logit), softmax otherwise."""
    if activation != "auto":
        return activation
    if model.config.problem_type == "multi_label_classification" or model.config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def class_probs(
    tok, model, texts: Sequence[str], pairs: Sequence[str] | None, batch_size: int, max_length: int,
    activation: Literal["softmax", "sigmoid"],
) -> np.ndarray:
    """Per-label probabilities [N, num_labels]; inputs longer than ``max_length`` (or than the model
    accepts) are truncated."""
    model_max = tok.model_max_length if tok.model_max_length < 100_000 else None
    model_max = model_max or getattr(model.config, "max_position_embeddings", None) or max_length
    max_length = min(max_length, model_max)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            first = list(texts[i : i + batch_size])
            second = None if pairs is None else list(pairs[i : i + batch_size])
            enc = tok(first, second, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(**enc).logits.float()
            probs = torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, dim=-1)
            out.append(probs.numpy().astype(np.float64))
    if not out:
        return np.zeros((0, model.config.num_labels))
    return np.concatenate(out)

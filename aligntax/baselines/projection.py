"""What INLP and SentenceDebias share: counterfactual contexts, their hidden states, and the
projection that is applied to the final hidden state (the input of the LM head) at generation.

A fit stage (`fit-projection@<method>`, one per entry of params.yaml `fitted:`) saves the LM head
of the model it was fitted on with the projection folded in, beside a pointer to that model
(``save_projected_model``), so `evaluate` loads models/<method> like any other model folder.

A context is a text that ends on an attribute word ("... so i called my mom"); its state is the
LM-head input at that last token, the very vector the projection later edits at every position.
Each context comes as a counterfactual tuple, one variant per class of its axis, that differ
only in the attribute words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligntax.baselines.attributes import AXES, WordList, find, load_word_lists, to_class
from aligntax.config import check
from aligntax.io import atomic_dir
from aligntax.models import save_partial

log = logging.getLogger(__name__)

TEMPLATES = (
    "the {w}",
    "this is the {w}",
    "i talked to the {w}",
    "tl;dr: my {w}",
)
"""Semantically bleached frames (after May et al. 2019 / Liang et al. 2020) that end on the word."""
PROJECTION_FILE = "projection.safetensors"
"""File name of the fitted [H, H] projection inside the method's model folder."""
CLAUSE = re.compile(r"[^.!?\n]+")
"""A corpus context is cut from a run of text between any . ! ? or line break. Coarser than
``aligntax.text.split_sentences`` on purpose of history: the fitted projections of the default run
were drawn from these runs (on the default train posts the two rules give 322 vs 321 gender
contexts), so switching rules re-fits INLP and SentenceDebias to other numbers."""


@dataclass
class ProjectionFitConfig:
    """Settings INLP and SentenceDebias share; each method's section adds its own fields."""

    SECTION: ClassVar[str] = "projection"
    axes: list[str] = field(default_factory=lambda: list(AXES))
    """Attribute axes to remove, one after the other (gender, race, religion)."""
    max_corpus_contexts: int = 100
    """Sentence prefixes taken from the training posts per axis, besides the template contexts."""
    held_out_fraction: float = 0.2
    """Share of counterfactual tuples held out to measure the probe before and after."""
    batch_size: int = 32
    """Contexts per forward pass when reading hidden states."""

    def __post_init__(self) -> None:
        name = self.SECTION
        check(len(self.axes) > 0 and set(self.axes) <= set(AXES), f"{name}.axes", f"a non-empty subset of {list(AXES)}")
        check(self.max_corpus_contexts >= 0, f"{name}.max_corpus_contexts", "an integer >= 0")
        check(0 < self.held_out_fraction < 1, f"{name}.held_out_fraction", "a number in (0, 1)")
        check(self.batch_size >= 1, f"{name}.batch_size", "an integer >= 1")


def context_states(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], cfg: ProjectionFitConfig,
    seed: int,
) -> tuple[list[WordList], pd.DataFrame, np.ndarray]:
    """The word lists of ``cfg.axes``, their counterfactual contexts and the contexts' final hidden states."""
    lists = load_word_lists(cfg.axes)
    contexts = counterfactual_contexts(texts, lists, cfg.max_corpus_contexts, seed)
    return lists, contexts, final_states(model, tokenizer, contexts["text"].tolist(), cfg.batch_size)


def tuple_counts(contexts: pd.DataFrame, rows: np.ndarray) -> dict[str, int]:
    """How many counterfactual tuples the ``rows`` of one axis hold, and how many came from the corpus."""
    corpus = rows & (contexts["source"] == "corpus").to_numpy()
    return {"tuples": int(contexts.loc[rows, "tuple_id"].nunique()),
            "corpus_tuples": int(contexts.loc[corpus, "tuple_id"].nunique())}


def counterfactual_contexts(
    texts: Sequence[str], lists: Sequence[WordList], max_corpus: int, seed: int, max_words: int = 12
) -> pd.DataFrame:
    """Counterfactual context tuples: columns tuple_id, axis, cls, text, source (template|corpus).

    Per axis: every word-list row in every template, plus up to ``max_corpus`` sentence prefixes
    from ``texts`` ending on an attribute word (at most ``max_words`` words; a seeded sample,
    without duplicates).
    """
    rng = np.random.default_rng(seed)
    records, tid = [], 0
    for wl in lists:
        k = len(wl.classes)
        seeds = [(t.replace("{w}", row[0]), "template") for row in wl.rows for t in TEMPLATES]
        corpus = sorted(
            {
                " ".join(sentence[: m.end()].split()[-max_words:])
                for text in texts
                for sentence in (s.group(0) for s in CLAUSE.finditer(text))
                for m in find(sentence, wl)[:1]
            }
        )
        if len(corpus) > max_corpus:
            corpus = [corpus[i] for i in sorted(rng.choice(len(corpus), size=max_corpus, replace=False))]
        seeds += [(c, "corpus") for c in corpus]
        for text, source in seeds:
            variants = [to_class(text, wl, c) for c in range(k)]
            if len(set(variants)) < k:
                continue
            records += [
                {"tuple_id": tid, "axis": wl.axis, "cls": c, "text": v, "source": source}
                for c, v in enumerate(variants)
            ]
            tid += 1
    return pd.DataFrame(records, columns=["tuple_id", "axis", "cls", "text", "source"])


@torch.no_grad()
def final_states(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int = 32
) -> np.ndarray:
    """LM-head input at the last token of each text: float32 array [len(texts), hidden]."""
    model.eval()
    head = model.get_output_embeddings()
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    out = []
    try:
        for i in tqdm(range(0, len(texts), batch_size), desc="hidden states", leave=False):
            enc = tokenizer(list(texts[i : i + batch_size]), return_tensors="pt", padding=True,
                            padding_side="right", return_token_type_ids=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            captured.clear()
            model(**enc)
            last = enc["attention_mask"].sum(1) - 1
            states = captured[0]
            out.append(states[torch.arange(states.shape[0], device=states.device), last].float().cpu())
    finally:
        handle.remove()
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)


TOLERANCE = 1e-6
"""A direction adds to a removed subspace only if its part outside that subspace is longer than
this share of ``scale`` (the size of real signal). In INLP the ridge weights shrink quickly once
the attribute is gone and the 3-class ridge's weight rows sum to ~0, so late rows are float noise
(~1e-14): a rank decision at machine precision (scipy.linalg.orth) used to remove such noise
directions, and the fit moved between machines."""


def extend_basis(basis: np.ndarray, directions: np.ndarray, scale: float, tol: float = TOLERANCE) -> np.ndarray:
    """``basis`` [H, r] (orthonormal columns) extended, in row order, by the parts of the rows of
    ``directions`` orthogonal to it that are longer than ``tol * scale`` (Gram-Schmidt, twice)."""
    for w in np.asarray(directions, dtype=np.float64):
        v = w.copy()
        for _ in range(2):
            v = v - basis @ (basis.T @ v)
        rest = np.linalg.norm(v)
        if rest > tol * scale:
            basis = np.hstack([basis, (v / rest)[:, None]])
    return basis


def held_out_split(tuple_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose whole counterfactual tuple is held out (no tuple is split)."""
    unique = np.unique(tuple_ids)
    rng = np.random.default_rng(seed)
    n_dev = int(round(fraction * len(unique)))
    dev = rng.choice(unique, size=n_dev, replace=False) if n_dev else np.array([], dtype=unique.dtype)
    return np.isin(tuple_ids, dev)


def fold_projection(model: PreTrainedModel, projection: torch.Tensor) -> PreTrainedModel:
    """Bake ``projection`` into an untied LM head: logits = (P h) W^T = h (W P)^T, P symmetric.

    The input embeddings stay as they are; the result generates exactly like editing the
    LM-head input h -> P h, and loads as a plain causal LM (no hook, no extra code at generation).
    """
    head = model.get_output_embeddings()
    hidden = head.weight.shape[1]
    if tuple(projection.shape) != (hidden, hidden):
        raise ValueError(f"projection has shape {tuple(projection.shape)}, the model's hidden size is {hidden}; "
                         "re-fit it on this model")
    folded = torch.nn.Linear(hidden, head.weight.shape[0], bias=head.bias is not None,
                             dtype=head.weight.dtype, device=head.weight.device)
    with torch.no_grad():
        folded.weight.copy_(head.weight @ projection.to(head.weight))
        if head.bias is not None:
            folded.bias.copy_(head.bias)
    model.config.tie_word_embeddings = False
    model.set_output_embeddings(folded)
    return model


def save_projected_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, projection: np.ndarray, out_dir: str | Path,
    method: str, base_dir: str | Path | None = None,
) -> None:
    """Write ``model``'s LM head with ``projection`` folded in, the tokenizer, and the projection itself
    (``projection.safetensors``, tensor ``projection``) to ``out_dir``, atomically.

    Only the head is new, so only it is saved, with a pointer to ``base_dir`` (default: the folder
    the model was loaded from, e.g. models/sft); ``load_model`` loads the folder as a whole model.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(projection, dtype=np.float32))
    base = Path(base_dir) if base_dir is not None else Path(model.name_or_path or "")
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"{base}: the model folder the projection is fitted on is missing; pass base_dir")
    fold_projection(model, tensor)
    head = model.get_output_embeddings()
    prefix = next(name for name, module in model.named_modules() if module is head)
    with atomic_dir(out_dir) as tmp:
        save_partial(model, tmp, {f"{prefix}.{name}" for name, _ in head.named_parameters()}, base, out_dir)
        tokenizer.save_pretrained(tmp)
        save_file({"projection": tensor}, str(tmp / PROJECTION_FILE), metadata={"method": method})


def load_projection(model_dir: str | Path) -> torch.Tensor:
    """The projection a fit stage saved beside its model; one clear error if it is missing or wrong."""
    path = Path(model_dir) / PROJECTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: projection not found; create it with its fit stage "
                                f"(`dvc repro fit-projection@{Path(model_dir).name}`)")
    tensors = load_file(str(path))
    if "projection" not in tensors or tensors["projection"].ndim != 2:
        raise ValueError(f"{path}: expected one 2-D tensor named 'projection'; re-run its fit stage")
    return tensors["projection"]


def probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   seed: int) -> float:
    """Held-out accuracy of a fresh logistic-regression probe (how much attribute is linearly left)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    with threadpool_limits(limits=1):
        probe.fit(x_train, y_train)
        return float(probe.score(x_test, y_test))


def axis_probes(x: np.ndarray, y: np.ndarray, dev: np.ndarray, before: np.ndarray | None, after: np.ndarray,
                seed: int, name: str) -> dict[str, float]:
    """One axis's held-out probe accuracy on its states ``x`` under the projection ``before`` (None: as
    they are) and ``after``, and the chance level. ``dev`` marks the held-out rows (the probe trains on
    the others). Logs one line as ``name``."""
    def accuracy(p: np.ndarray | None) -> float:
        train, test = (x[~dev], x[dev]) if p is None else (x[~dev] @ p, x[dev] @ p)
        return probe_accuracy(train, y[~dev], test, y[dev], seed)

    out = {"held_out_probe_accuracy_before": accuracy(before), "held_out_probe_accuracy_after": accuracy(after),
           "chance_accuracy": float(np.bincount(y[dev]).max() / max(len(y[dev]), 1))}
    log.info("%s: held-out probe %.3f -> %.3f (chance %.3f)", name, out["held_out_probe_accuracy_before"],
             out["held_out_probe_accuracy_after"], out["chance_accuracy"])
    return out

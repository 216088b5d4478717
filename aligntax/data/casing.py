"""truecase: restore the capitalisation of lower-cased posts and summaries (before NER and augmentation).

The Reddit TIFU sample is lower-cased, and spaCy finds few entities in lower-cased text, so the
entity negatives and CLIFF's entity pooling barely operate on it. This step writes a cased copy
of each split (data/raw stays what the user gave): the text is split into sentences, each
sentence into Moses tokens, a casing model chooses each token's case, and the chosen case is
written back onto the original characters. Only letters change case: the cased text has the
same length and characters as its input (``cased.lower() == text.lower()``), so character spans
found on it (entities) are valid on the stored text too.

Backends: ``truecase`` (the PyPI package's statistical English model, shipped in its wheel) and
``sentence`` (rules: sentence starts and the pronoun "I"; no model).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import pandas as pd

from aligntax.config import check
from aligntax.data.download import sentence_spans
from aligntax.ner import Ner

log = logging.getLogger(__name__)

Caser = Callable[[list[str]], list[str]]
"""Tokens of one sentence -> the same tokens with the chosen case (same count)."""

_PROTECTED = re.compile(
    r"(?:https?://|www\.)\S+|\S+@\S+\.\w+|\S+\.(?:com|org|net|io|gov|edu)(?:/\S*)?\b|(?<!\w)/?[ru]/\w+", re.I)
NAMED_TYPES = frozenset({"PERSON", "ORG", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "EVENT"})
"""Entity types with a name (numbers and dates are found in lower-cased text too)."""


@dataclass
class TruecaseConfig:
    enabled: bool = True
    """False: the cased files are copies of the raw ones (the augmentation then sees raw text)."""
    backend: Literal["truecase", "sentence"] = "truecase"
    """`truecase` (packaged statistical model) or `sentence` (capitalise sentence starts and "I" only)."""
    columns: list[Literal["post", "summary"]] = field(default_factory=lambda: ["post", "summary"])
    """Which text columns are cased."""
    only_lowercase: bool = True
    """Case only text without an upper-case letter; text that already has case passes unchanged."""
    out_of_vocabulary: Literal["as-is", "title", "lower"] = "as-is"
    """truecase: what happens to words its model has never seen (as-is keeps them lower-case)."""

    def __post_init__(self) -> None:
        check(len(self.columns) >= 1 and len(set(self.columns)) == len(self.columns), "truecase.columns",
              "a non-empty list of distinct post | summary")


# --- pure text functions -------------------------------------------------------------------


def skip_reason(text: object, only_lowercase: bool) -> str | None:
    """Why ``text`` is passed through uncased (a count key), or None when it is cased."""
    if not isinstance(text, str) or not text.strip():
        return "empty"
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "no_letters"
    cased_letters = [c for c in letters if c.lower() != c.upper()]
    if not cased_letters:
        return "no_cased_letters"  # scripts without case (CJK, Arabic ...)
    if all(c.isupper() for c in cased_letters):
        return "all_caps" if len(cased_letters) > 1 else None
    if only_lowercase and any(c.isupper() for c in cased_letters):
        return "already_cased"
    return None


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Character spans whose case must not change: URLs, e-mail addresses, domain names, /r/ and /u/ names."""
    return [m.span() for m in _PROTECTED.finditer(text)]


def apply_token_case(text: str, tokens: Sequence[str], cased: Sequence[str],
                     protected: Sequence[tuple[int, int]] = ()) -> tuple[str, int]:
    """Write the case of ``cased[i]`` onto the occurrence of ``tokens[i]`` in ``text`` (left to right).

    A token is changed only where it is found in order, ``cased[i]`` spells the same letters with
    the same length, and it lies outside ``protected`` spans. Returns (text, tokens changed); the
    result always has the length and lower-cased characters of ``text``.
    """
    chars = list(text)
    pos, changed = 0, 0
    lowered = text.lower()
    for tok, new in zip(tokens, cased, strict=True):
        at = lowered.find(tok.lower(), pos)
        if at < 0 or len(tok) != len(new) or tok.lower() != new.lower():
            continue
        end = at + len(tok)
        pos = end
        if any(s < end and at < e for s, e in protected):
            continue
        if text[at:end] != new and all(len(c.lower()) == 1 for c in new):
            chars[at:end] = list(new)
            changed += 1
    out = "".join(chars)
    return (out, changed) if out.lower() == lowered else (text, 0)


def sentence_caser(tokens: list[str]) -> list[str]:
    """Rule backend: capitalise the first word of the sentence and the pronoun "i" (and "i'm", "i'd" ...)."""
    out = [("I" + t[1:]) if t.lower() == "i" or re.fullmatch(r"i'\w+", t.lower()) else t for t in tokens]
    for k, t in enumerate(out):
        if any(c.isalpha() for c in t):
            out[k] = t[:1].upper() + t[1:]
            break
    return out


@lru_cache(maxsize=1)
def _moses():
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang="en")


def case_text(text: str, caser: Caser) -> tuple[str, int, int]:
    """``text`` with each sentence cased by ``caser``; returns (text, tokens, tokens changed)."""
    protected = protected_spans(text)
    out, n_tokens, n_changed = text, 0, 0
    for start, end in sentence_spans(text):
        tokens = _moses().tokenize(text[start:end], escape=False)
        if not tokens:
            continue
        cased = caser(list(tokens))
        shifted = [(s - start, e - start) for s, e in protected]
        new, changed = apply_token_case(out[start:end], tokens, cased, shifted)
        out = out[:start] + new + out[end:]
        n_tokens += len(tokens)
        n_changed += changed
    return out, n_tokens, n_changed


# --- model backend -------------------------------------------------------------------------


class _DistUnpickler(pickle.Unpickler):
    """Reads truecase's english.dist, which holds only sets and nltk FreqDists; refuses any other class."""

    ALLOWED = {("builtins", "set"), ("nltk.probability", "FreqDist")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"truecase model: unexpected class {module}.{name} in the model file")
        return super().find_class(module, name)


@lru_cache(maxsize=1)
def _truecaser():
    from importlib import resources

    try:
        from truecase.TrueCaser import TrueCaser
    except ImportError as err:
        raise RuntimeError("truecase.backend: the `truecase` package is not installed; "
                           "pip install truecase==0.0.14 or use backend: sentence") from err
    with resources.files("truecase").joinpath("data/english.dist").open("rb") as fh:
        dist = _DistUnpickler(fh).load()
    caser = TrueCaser.__new__(TrueCaser)  # its __init__ would unpickle the file without restriction
    for key in ("uni_dist", "backward_bi_dist", "forward_bi_dist", "trigram_dist"):
        setattr(caser, key, dist[key])
    caser.word_casing_lookup = {word: fixed_order(spellings) for word, spellings in dist["word_casing_lookup"].items()}
    return caser


def fixed_order(spellings: set[str]) -> tuple[str, ...]:
    """A word's casing candidates in a fixed order: lower-case first, then by spelling.

    The package keeps them in a ``set``, whose order follows Python's per-process string hash
    seed; it picks the first best-scoring candidate and sums scores in that order, so the same
    text was cased differently in different processes. In this order a tie goes to the lower-case
    spelling (the stored text's) and every sum is added in the same order.
    """
    return tuple(sorted(spellings, key=lambda s: (s != s.lower(), s)))


def load_caser(cfg: TruecaseConfig) -> Caser:
    """The configured casing backend as a tokens -> tokens function."""
    if cfg.backend == "sentence":
        return sentence_caser
    caser = _truecaser()
    return lambda tokens: caser.get_true_case_from_tokens(tokens, out_of_vocabulary_token_option=cfg.out_of_vocabulary)


# --- the stage -----------------------------------------------------------------------------


def case_column(texts: Sequence[object], caser: Caser, only_lowercase: bool) -> tuple[list[object], dict]:
    """Cased ``texts`` (uncasable values pass through unchanged) and their counts."""
    skipped: Counter = Counter()
    out: list[object] = []
    tokens = changed = cased = 0
    for text in texts:
        reason = skip_reason(text, only_lowercase)
        if reason:
            skipped[reason] += 1
            out.append(text)
            continue
        new, n, c = case_text(text, caser)
        out.append(new)
        tokens, changed, cased = tokens + n, changed + c, cased + int(new != text)
    return out, {"texts": len(out), "cased": cased, "skipped": dict(sorted(skipped.items())),
                 "tokens": tokens, "tokens_changed": changed,
                 "tokens_changed_share": round(changed / tokens, 4) if tokens else 0.0}


def entity_counts(ner: Ner, texts: Sequence[object]) -> dict:
    """How many entities (all paper types, and named ones) NER finds in ``texts``."""
    ents = ner.entities([t if isinstance(t, str) else "" for t in texts])
    labels = Counter(e.label for es in ents for e in es)
    named = [sum(e.label in NAMED_TYPES for e in es) for es in ents]
    return {"entities": sum(labels.values()), "texts_with_entity": sum(bool(es) for es in ents),
            "named": sum(named), "texts_with_named": sum(n > 0 for n in named),
            "by_label": dict(sorted(labels.items()))}


def truecase_frame(df: pd.DataFrame, cfg: TruecaseConfig, caser: Caser | None,
                   ner: Ner | None = None) -> tuple[pd.DataFrame, dict]:
    """A cased copy of a raw split and its metrics (per column: counts, entities before/after)."""
    out = df.copy()
    metrics: dict = {"rows": len(df), "enabled": cfg.enabled, "backend": cfg.backend}
    for col in cfg.columns:
        if cfg.enabled:
            values, counts = case_column(list(df[col]), caser, cfg.only_lowercase)
            out[col] = pd.Series(values, index=df.index, dtype=df[col].dtype)
        else:
            counts = {"texts": len(df), "cased": 0}
        if ner is not None:
            counts["entities_before"] = entity_counts(ner, list(df[col]))
            counts["entities_after"] = entity_counts(ner, list(out[col]))
        metrics[col] = counts
    return out, metrics

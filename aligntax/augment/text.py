"""Pure text functions of the augmentation stages: screening, filters, swaps and span mapping.

No models here: every function takes text (and entity spans) and returns text (and spans), so the
rules the contrastive groups depend on are testable on their own.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import pandas as pd

from aligntax.ner import Entity, hallucinated
from aligntax.text import words

NEGATIONS = frozenset(
    "not no never nothing nobody none neither nor without nowhere cannot dont didnt doesnt isnt wasnt "
    "wont cant couldnt shouldnt wouldnt arent werent havent hasnt hadnt".split()
)


def word_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the word sets of ``a`` and ``b`` (1.0 when both have no words)."""
    sa, sb = set(words(a)), set(words(b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def negation_count(text: str) -> int:
    """Number of negation words (``not``, ``never``, ``n't`` forms, ...) in ``text``."""
    return sum(1 for w in words(text) if w in NEGATIONS or w.endswith("n't") or w.replace("'", "") in NEGATIONS)


def introduces_negation(reference: str, candidate: str) -> bool:
    """True when ``candidate`` has more negations than ``reference`` ("on my day off" -> "not my day off")."""
    return negation_count(candidate) > negation_count(reference)


def normalize(text: str) -> str:
    """Lower-cased, whitespace-collapsed text with a leading article removed (entity comparison key)."""
    key = " ".join(words(text))
    for article in ("the ", "a ", "an "):
        if key.startswith(article):
            return key[len(article):]
    return key


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english")


def content_stems(text: str) -> set[str]:
    """Snowball stems of the words of ``text`` that are not spaCy stop words, possessive "'s" removed."""
    from spacy.lang.en.stop_words import STOP_WORDS

    stem = _stemmer().stem
    return {stem(w.removesuffix("'s")) for w in words(text) if w not in STOP_WORDS and w.removesuffix("'s")}


def new_entities(reference: str, candidate_entities: Sequence[Entity]) -> list[Entity]:
    """Entities of a candidate that name something absent from ``reference`` (CLIFF's filter).

    An entity is known when its text occurs in the reference, or when every content word of it
    (stop words dropped, stemmed) does: "a couple of thousand" for "a couple thousand", "two 14
    years" for "two 14 year olds", "karma" for "karma's" are not new; "Mary" for "John" is. An
    entity made only of stop words ("one") must occur as it is.
    """
    ref = f" {' '.join(words(reference))} "
    ref_stems = content_stems(reference)

    def known(e: Entity) -> bool:
        stems = content_stems(e.text)
        return f" {normalize(e.text)} " in ref or bool(stems) and stems <= ref_stems

    return [e for e in candidate_entities if not known(e)]


def lower_keep_length(text: str) -> str:
    """``text`` lower-cased character by character, keeping any character whose lower case is longer
    (so character spans stay valid: "İ".lower() has two characters)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def match_case(reference: str, text: str) -> str:
    """Lower-case ``text`` (spans kept) when the reference is all lower case, so casing is no give-away."""
    return lower_keep_length(text) if reference == reference.lower() else text


def screen(post: object, summary: object) -> str | None:
    """Why a post cannot be augmented (a drop reason), or None when it can."""
    if not isinstance(summary, str) or not summary.strip():
        return "empty_summary"
    if not isinstance(post, str) or not post.strip():
        return "empty_post"
    if " ".join(post.split()).lower() == " ".join(summary.split()).lower():
        return "summary_equals_post"
    letters = [c for c in summary if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.5:
        return "non_english"
    return None


def screen_rows(posts: pd.DataFrame) -> tuple[list, Counter]:
    """The rows of ``posts`` (id, post, summary ...) that can be augmented, and the others counted by
    their ``screen`` reason."""
    kept, dropped = [], Counter()
    for row in posts.itertuples(index=False):
        reason = screen(row.post, row.summary)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(row)
    return kept, dropped


def replace_spans(text: str, entities: Sequence[Entity], replacements: dict[int, str]) -> tuple[str, list[Entity]]:
    """Replace ``entities[i]`` by ``replacements[i]`` and move every entity span to the new text.

    Entities must not overlap. Replaced entities keep their label and cover the new string; the
    others keep their text and are shifted. Returns (new text, entities of the new text).
    """
    order = sorted(range(len(entities)), key=lambda i: entities[i].start)
    out, spans, pos, shift = [], [], 0, 0
    for i in order:
        e = entities[i]
        if e.start < pos:
            raise ValueError(f"overlapping entity spans at {e.start}")
        out.append(text[pos:e.start])
        new = replacements.get(i, text[e.start:e.end])
        start = e.start + shift
        spans.append(Entity(start, start + len(new), e.label, new))
        out.append(new)
        shift += len(new) - (e.end - e.start)
        pos = e.end
    out.append(text[pos:])
    return "".join(out), spans


def swap_entities(
    summary: str,
    summary_entities: Sequence[Entity],
    post_entities: Sequence[Entity],
    rng: random.Random,
    max_swaps: int = 2,
) -> tuple[str, list[Entity]] | None:
    """swap_ent: replace 1..max_swaps summary entities by same-type entities of the post.

    A replacement must differ from the entity it replaces and from every summary entity. Returns
    (text, entity spans) or None when no summary entity has a same-type alternative in the post.
    """
    in_summary = {normalize(e.text) for e in summary_entities}
    options: dict[int, list[str]] = {}
    for i, e in enumerate(summary_entities):
        seen: dict[str, str] = {}
        for p in post_entities:
            key = normalize(p.text)
            if p.label == e.label and key and key not in in_summary and key not in seen:
                seen[key] = p.text
        if seen:
            options[i] = [seen[k] for k in sorted(seen)]
    if not options:
        return None
    k = rng.randint(1, min(max_swaps, len(options)))
    chosen = sorted(rng.sample(sorted(options), k))
    return replace_spans(summary, summary_entities, {i: rng.choice(options[i]) for i in chosen})


def insert_words(text: str, inserts: Sequence[str], rng: random.Random) -> str:
    """Insert each of ``inserts`` at a random word boundary of ``text``; every original word is kept."""
    tokens = text.split()
    for word in inserts:
        tokens.insert(rng.randint(0, len(tokens)), word)
    return " ".join(tokens)


def clean_generation(text: str) -> str:
    """The first line of a sampled continuation, without quotes and few-shot spill-over."""
    text = text.strip().split("\n", 1)[0]
    for marker in ("Original text:", "Toxic rewrite:", "Paraphrase:", "TL;DR:"):
        text = text.split(marker, 1)[0]
    return text.strip().strip('"').strip()


def spans_to_records(entities: Sequence[Entity]) -> list[dict]:
    """Entity spans as the GROUPS ``entity_spans`` records (start, end, label)."""
    return [{"start": int(e.start), "end": int(e.end), "label": e.label} for e in entities]


def post_rng(seed: int, post_id: str, purpose: str) -> random.Random:
    """A random stream that depends only on (seed, post, purpose): the same under any chunking."""
    return random.Random(f"{seed}/{purpose}/{post_id}")


def selected(seed: int, post_id: str, purpose: str, share: float) -> bool:
    """Whether ``post_id`` is in the ``share`` of posts picked for ``purpose`` (stable under chunking)."""
    return share >= 1.0 or post_rng(seed, post_id, f"select/{purpose}").random() < share


def sentence_case(text: str) -> str:
    """Capitalise sentence starts and the pronoun "i" (MT models are trained on cased text)."""
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"(^\s*|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def fill_entity(reference: str, entities: list[Entity], i: int, generated: str) -> tuple[str, list[Entity]] | None:
    """mask_regen: put the first words of ``generated`` (as many as the entity had) in place of entity ``i``
    (without a possessive "'s" that the reference already has after the entity).

    Returns None when the fill is empty or the same entity again.
    """
    n = max(1, len(entities[i].text.split()))
    fill = " ".join(clean_generation(generated).split()[:n]).strip(" .,;:!?")
    for possessive in ("'s", "\u2019s"):  # "grandma's" for "grandma" before "'s bed": the same entity again
        if reference[entities[i].end:].startswith(("'s", "\u2019s")) and fill.endswith(possessive):
            fill = fill[: -len(possessive)]
    if not words(fill) or normalize(fill) == normalize(entities[i].text):
        return None
    return replace_spans(reference, entities, {i: fill})


def jaccard_violations(positives: list[str], negatives: list[str], max_jaccard: float) -> list[bool]:
    """Per negative: True when its word Jaccard with some positive is above ``max_jaccard``."""
    return [any(word_jaccard(p, n) > max_jaccard for p in positives) for n in negatives]


def pick_fills(reference: str, entities: list[Entity], targets: Sequence[int], generations: Sequence[Sequence[str]],
               variants: int) -> tuple[list[tuple[str, list[Entity]]], int]:
    """mask_regen's negatives: ``generations[j]`` are the fills of entity ``targets[j]``, best first. Takes the
    first distinct valid fill (``fill_entity``) of every target, then the second of every target, ... up to
    ``variants``; returns them with the number of targets that gave no valid fill at all."""
    queues = [[f for f in (fill_entity(reference, entities, i, g) for g in gens) if f is not None]
              for i, gens in zip(targets, generations, strict=True)]
    empty = sum(not q for q in queues)
    made: dict[str, tuple[str, list[Entity]]] = {}
    for rank in range(max((len(q) for q in queues), default=0)):
        for q in queues:
            if rank < len(q) and len(made) < variants:
                made.setdefault(normalize(q[rank][0]), q[rank])
    return list(made.values()), empty


def mask_targets(n_entities: int, rng: random.Random, variants: int) -> list[int]:
    """Which reference entities mask_regen masks: a first one drawn from ``rng``, then others in shuffled order."""
    first = rng.randrange(n_entities)
    rest = [i for i in range(n_entities) if i != first]
    rng.shuffle(rest)
    return [first, *rest][:variants]


def unsupported_beams(texts: Sequence[str], entities: Sequence[list[Entity]], post: str, reference: str,
                      keep: int, drop: Counter) -> list[tuple[str, list[Entity]]]:
    """sys_lowcon's filter: the first ``keep`` of the beams (given lowest score first) that carry an entity the
    post does not support (``aligntax.ner.hallucinated``); every other beam is counted in ``drop`` by reason."""
    seen, out = {normalize(reference)}, []
    for text, ents in zip(texts, entities, strict=True):
        key = normalize(text)
        reason = ("empty" if not words(text) else "duplicate" if key in seen else "no_entity" if not ents
                  else "supported_entities_only" if not hallucinated(ents, post)
                  else "over_limit" if len(out) >= keep else None)
        seen.add(key)
        if reason:
            drop[reason] += 1
        else:
            out.append((text, ents))
    return out

"""Attribute word lists (gender, race, religion) and counterfactual word swapping.

Shared data code of three baselines: CDA swaps the words in the training data, INLP and
SentenceDebias build counterfactual sentences whose hidden states define the bias direction.
The lists ship in ``wordlists/`` (provenance in ``wordlists/SOURCES.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WORDLIST_DIR = Path(__file__).resolve().parent / "wordlists"
AXES = ("gender", "race", "religion")
AMBIGUOUS = {"her": ("him", "his")}
"""The one word with two counterparts; ``_her_counterpart`` picks one from the next word."""

# A word after "her" that marks it as an object ("told her that", "gave her a"), not a possessive.
_OBJECT_FOLLOWERS = frozenset(
    """a an the this that these those my your his her our their its some any no every all both
    to and or but nor so yet because if when while as than then since until unless though although
    about above across after against along around at before behind below beside between by down
    during for from in inside into near of off on onto out outside over past through to toward
    towards under up upon with within without back again away too also already still just even
    only really very now today tonight yesterday tomorrow there here how what why where who whom
    which i you he she we they it me him us them is was are were be been being am will would can
    could should shall may might must do does did have has had not once twice anyway instead
    either""".split()
)


@dataclass(frozen=True)
class WordList:
    """One axis: class names and counterfactual tuples (one word per class)."""

    axis: str
    """gender, race or religion."""
    classes: tuple[str, ...]
    """Class names, in column order (the class index is the position)."""
    rows: tuple[tuple[str, ...], ...]
    """Counterfactual tuples; rows[r][c] is the class-c form of row r."""

    def words(self) -> dict[str, int]:
        """Every listed word -> its class index."""
        return {w: c for row in self.rows for c, w in enumerate(row)}

    def counterparts(self, word: str, target: int, next_word: str = "") -> str:
        """The class-``target`` form of ``word`` (lower-case in, lower-case out)."""
        hits = [row for row in self.rows if word in row]
        if not hits:
            raise KeyError(f"'{word}' is not in the {self.axis} word list")
        options = [row[target] for row in hits]
        if len(set(options)) > 1:
            return _her_counterpart(options, next_word)
        return options[0]


def load_word_list(axis: str, path: str | Path | None = None) -> WordList:
    """Read ``wordlists/<axis>.tsv`` (or ``path``); one clear error for a malformed file."""
    path = Path(path) if path is not None else WORDLIST_DIR / f"{axis}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word list not found; allowed axes: {', '.join(AXES)}")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) < 2:
        raise ValueError(f"{path}: needs a header line of class names and at least one word row")
    classes = tuple(c.strip() for c in lines[0].split("\t"))
    if len(classes) < 2:
        raise ValueError(f"{path}: header must name at least two tab-separated classes")
    rows, seen = [], {}
    for n, line in enumerate(lines[1:], start=2):
        row = tuple(w.strip().lower() for w in line.split("\t"))
        if len(row) != len(classes) or any(not w for w in row):
            raise ValueError(f"{path}: row {n} ({line!r}) needs {len(classes)} tab-separated words")
        if row in rows:
            continue
        for c, w in enumerate(row):
            if w in seen and (w not in AMBIGUOUS or seen[w] != c):
                raise ValueError(f"{path}: '{w}' appears twice (row {n}); each word needs one counterpart")
            seen[w] = c
        rows.append(row)
    return WordList(axis=axis, classes=classes, rows=tuple(rows))


def load_word_lists(axes: list[str] | tuple[str, ...]) -> list[WordList]:
    """The word lists of ``axes``, checked to share no word across axes."""
    lists = [load_word_list(a) for a in axes]
    owner: dict[str, str] = {}
    for wl in lists:
        for w in wl.words():
            if w in owner and owner[w] != wl.axis:
                raise ValueError(f"word '{w}' is listed for both {owner[w]} and {wl.axis}")
            owner[w] = wl.axis
    return lists


def rewrite(text: str, words: WordList, target: Callable[[int], int]) -> tuple[str, int]:
    """Replace every attribute word of class c in ``text`` by its class-``target(c)`` form.

    Whole words only, case-insensitive, capitalisation kept. Returns (new text, replacements).
    """
    classes = words.words()
    pattern = _pattern(words)
    count = 0

    def replace(m: re.Match) -> str:
        nonlocal count
        src = m.group(0)
        low = src.lower()
        dst = words.counterparts(low, target(classes[low]), _next_word(text, m.end()))
        if dst != low:
            count += 1
        return _match_case(src, dst)

    return pattern.sub(replace, text), count


def swap(text: str, lists: list[WordList], shift: int = 1) -> tuple[str, int]:
    """Counterfactual of ``text``: class c -> class (c + shift) mod k on every axis (two-sided CDA)."""
    total = 0
    for wl in lists:
        k = len(wl.classes)
        text, n = rewrite(text, wl, lambda c, k=k: (c + shift) % k)
        total += n
    return text, total


def to_class(text: str, words: WordList, cls: int) -> str:
    """``text`` with every attribute word of ``words`` mapped to class ``cls``."""
    return rewrite(text, words, lambda _c: cls)[0]


def find(text: str, words: WordList) -> list[re.Match]:
    """Attribute-word matches of ``words`` in ``text``, left to right."""
    return list(_pattern(words).finditer(text))


_PATTERNS: dict[tuple, re.Pattern] = {}


def _pattern(words: WordList) -> re.Pattern:
    key = (words.axis, words.rows)
    if key not in _PATTERNS:
        alternatives = sorted(words.words(), key=len, reverse=True)
        body = "|".join(re.escape(w) for w in alternatives)
        _PATTERNS[key] = re.compile(rf"(?<![\w'-])(?:{body})(?![\w-])", re.IGNORECASE)
    return _PATTERNS[key]


def _next_word(text: str, pos: int) -> str:
    m = re.match(r"\s*([A-Za-z']+)", text[pos:])
    return m.group(1).lower() if m else ""


def _her_counterpart(options: list[str], next_word: str) -> str:
    obj, poss = AMBIGUOUS["her"]
    if set(options) != {obj, poss}:
        raise ValueError(f"ambiguous counterparts {options}; only 'her' -> him/his is resolvable")
    return obj if not next_word or next_word in _OBJECT_FOLLOWERS else poss


def _match_case(src: str, dst: str) -> str:
    if len(src) > 1 and src.isupper():
        return dst.upper()
    if src[:1].isupper():
        return dst[:1].upper() + dst[1:]
    return dst

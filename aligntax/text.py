r"""Words and sentence boundaries, once for every package (pure functions, no models).

``words`` is the one word tokenizer (augmentation filters, output patterns, overlap features).
A word is a run of Unicode letters or digits, with inner apostrophes kept ("don't", "rock'n'roll"),
lower-cased. Why this rule and not ``[\w']+`` or ``[a-z0-9]+``:
- Unicode letters, so "café" and "naïve" stay one word (an ASCII class cuts them into pieces);
  the text is NFC-normalised first, so a decomposed "é" (e + combining accent) is one letter too;
- no underscore (``\w`` has one): "foo_bar" is two words, as Reddit markup and usernames read;
- apostrophes only between letters/digits, so quotes ('hi') and a plural possessive ("dogs'")
  do not stick to words, and the typographic apostrophe (U+2019, "don’t") counts as "'";
- digits are words ("3", "90s"); "3.5" and "1,000" are two words each.

A sentence ends after . ! ? (with any closing quotes or brackets) followed by whitespace, and at
every line break. ``split_sentences`` gives the stripped pieces between boundaries (the scorers'
view: closing quotes stay with the boundary); ``sentence_spans`` gives character spans that keep
the closing quotes (the view the download stage cuts posts with).
"""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*")


def words(text: object) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters/digits, inner apostrophes kept); [] for a non-string."""
    if not isinstance(text, str):
        return []
    return WORD.findall(unicodedata.normalize("NFC", text).replace("\u2019", "'").lower())


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by space, and on line breaks; drop blanks."""
    return [s.strip() for s in SENTENCE_BOUNDARY.split(text) if s and s.strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (split after . ! ? and at line breaks)."""
    spans, start = [], 0
    for m in SENTENCE_BOUNDARY.finditer(text):
        end = len(text[:m.end()].rstrip())
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans

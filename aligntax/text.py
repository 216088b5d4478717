"""Sentence boundaries, once for every package (pure functions, no models).

A sentence ends after . ! ? (with any closing quotes or brackets) followed by whitespace, and at
every line break. ``split_sentences`` gives the stripped pieces between boundaries (the scorers'
view: closing quotes stay with the boundary); ``sentence_spans`` gives character spans that keep
the closing quotes (the view the download stage cuts posts with).
"""

from __future__ import annotations

import re

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*")


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

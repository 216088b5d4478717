"""Input checks and text helpers shared by the scorers (pure functions, no models).

Bad-input policy (the same for every backend):
- ``None``, NaN and empty / whitespace-only strings are *blank*: they get the backend's documented
  blank score without reaching a model;
- any other non-string (int, bytes, dict, ...) stops the call with a ValueError naming its index
  before anything is scored, so a batch never fails half-way;
- very long, non-English and emoji text is scored as it is (each backend documents its truncation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def is_blank(value: object) -> bool:
    """True for None, NaN and strings with no non-space character."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def check_texts(texts: Sequence[object], name: str = "texts") -> tuple[list[str], list[bool]]:
    """Validate a batch; return the texts ("" for blanks) and a blank mask, or raise ValueError."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{name}: expected a sequence of strings, got a single {type(texts).__name__}")
    out, blank = [], []
    for i, value in enumerate(texts):
        if is_blank(value):
            out.append("")
            blank.append(True)
        elif isinstance(value, str):
            out.append(value)
            blank.append(False)
        else:
            raise ValueError(f"{name}[{i}]: expected a string, None or NaN, got {type(value).__name__}")
    return out, blank


def chunk_sentences(sentences: list[str], size: int) -> list[str]:
    """Consecutive, non-overlapping chunks of ``size`` sentences (SummaC-ZS uses 2)."""
    return [" ".join(sentences[i : i + size]) for i in range(0, len(sentences), size)]

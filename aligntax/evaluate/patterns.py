"""Output patterns of generated summaries, as the paper reports them: pure text rules.

Each rule says whether one generation shows the pattern; the evaluate stage reports the share of
generations that do. An **empty** output (no letter or digit at all: "", whitespace,
punctuation only) is only counted as empty; the other five rules apply to non-empty outputs.

- **empty**: no alphanumeric character.
- **abstention**: an explicit refusal or apology for not summarising ("I'm sorry, but ...",
  "I can't summarize ...", "As an AI ...", "I cannot provide ..."), matched by ``ABSTENTION``.
  First-person phrases that merely start a Reddit story ("i can't believe ...") do not match:
  a refusal needs a refusal verb after the modal.
- **repetitive**: the same word ``repeat_run`` or more times in a row, or at least
  ``repeat_share`` of the word ``repeat_ngram``-grams repeat an earlier one (degenerate loops).
- **incomplete**: cut off mid-sentence: the model hit ``max_new_tokens`` without an
  end-of-sequence token AND the text does not end with sentence-final punctuation (. ! ? …,
  optionally followed by closing quotes or brackets). A TL;DR that stops cleanly without a full
  stop is not incomplete; only the length limit makes it so.
- **excessive_punctuation**: at least ``punct_share`` of the non-space characters are
  punctuation or symbols (Unicode categories P and S), or ``punct_run`` or more of them stand
  in a row with no space between ("!!!!", "?!?!", "....").
- **non_sequitur**: unrelated to the post: the cosine similarity of the sentence embeddings of
  summary and post (all-MiniLM-L6-v2 by default, computed by the caller) is below
  ``min_similarity``. Calibrated on the 355 reference TL;DRs of the default data: 0.15 flags
  3.4% of the human references and 51% of references paired with a random other post (a
  lexical-overlap rule flagged 9.6% / 61%, since TL;DRs are abstractive).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aligntax.config import check
from aligntax.text import words

PATTERNS = ("empty", "abstention", "repetitive", "incomplete", "excessive_punctuation", "non_sequitur")

_ALNUM = re.compile(r"[^\W_]")
_FINAL = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_MODAL = r"(?: can ?not| can't| won't| will not|(?: am|'m) (?:not able|unable) to)"
_REFUSAL_VERB = r"(?:help|assist|summari[sz]e|provide|comply|fulfill|create|write|generate|do that|answer|respond|engage)"
ABSTENTION = re.compile(
    r"\b(?:"
    rf"i{_MODAL} {_REFUSAL_VERB}"
    r"|i(?:'m| am) sorry,? but"
    r"|i apologi[sz]e,? but"
    r"|as an ai\b"
    r"|as a language model"
    r"|i(?:'m| am) not (?:comfortable|going to) (?:summari[sz]|help|provid|writ)"
    r"|(?:this|the) (?:post|content|request|text) (?:is|contains) (?:inappropriate|offensive|harmful)"
    r")",
    re.IGNORECASE,
)


@dataclass
class PatternConfig:
    repeat_ngram: int = 3
    """n of the word n-grams checked for repetition."""
    repeat_share: float = 0.3
    """A text is repetitive when at least this share of its n-grams repeat an earlier one."""
    repeat_run: int = 4
    """... or when one word occurs this many times in a row."""
    punct_share: float = 0.3
    """Excessive punctuation: at least this share of non-space characters are punctuation/symbols."""
    punct_run: int = 4
    """... or a contiguous run of this many punctuation characters."""
    embedder: str = "all-minilm-l6-v2"
    """Sentence embedder for non-sequitur: `all-minilm-l6-v2` (packaged) or a sentence-transformers id/folder."""
    min_similarity: float = 0.15
    """Non-sequitur: summary-post embedding cosine below this."""

    def __post_init__(self) -> None:
        check(self.repeat_ngram >= 1, "evaluate.patterns.repeat_ngram", "an integer >= 1")
        check(0.0 < self.repeat_share <= 1.0, "evaluate.patterns.repeat_share", "a number in (0, 1]")
        check(self.repeat_run >= 2, "evaluate.patterns.repeat_run", "an integer >= 2")
        check(0.0 < self.punct_share <= 1.0, "evaluate.patterns.punct_share", "a number in (0, 1]")
        check(self.punct_run >= 2, "evaluate.patterns.punct_run", "an integer >= 2")
        check(self.embedder.strip() != "", "evaluate.patterns.embedder", "'all-minilm-l6-v2', a model id or a folder")
        check(-1.0 <= self.min_similarity <= 1.0, "evaluate.patterns.min_similarity", "a number in [-1, 1]")


def is_empty(text: str | None) -> bool:
    return not isinstance(text, str) or _ALNUM.search(text) is None


def is_abstention(text: str) -> bool:
    # Curly apostrophes are folded so the patterns only spell "'".
    return ABSTENTION.search(text.replace("\u2019", "'")) is not None


def is_repetitive(text: str, cfg: PatternConfig) -> bool:
    toks = words(text)
    run = 1
    for prev, cur in zip(toks, toks[1:], strict=False):
        run = run + 1 if cur == prev else 1
        if run >= cfg.repeat_run:
            return True
    n = cfg.repeat_ngram
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    if len(grams) < 2:
        return False
    return 1.0 - len(set(grams)) / len(grams) >= cfg.repeat_share


def is_incomplete(text: str, finished: bool) -> bool:
    return not finished and _FINAL.search(text.rstrip()) is None


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def is_excessive_punctuation(text: str, cfg: PatternConfig) -> bool:
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    flags = [_is_punct(c) for c in text]
    run = best = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best >= cfg.punct_run or sum(_is_punct(c) for c in chars) / len(chars) >= cfg.punct_share


def is_non_sequitur(similarity: float, cfg: PatternConfig) -> bool:
    return similarity < cfg.min_similarity


def detect(text: str, finished: bool, similarity: float, cfg: PatternConfig) -> dict[str, bool]:
    """All six pattern flags of one generation (only ``empty`` can be set for an empty one).

    ``finished``: the model emitted end-of-sequence; ``similarity``: summary-post embedding cosine.
    """
    if is_empty(text):
        return {name: name == "empty" for name in PATTERNS}
    return {
        "empty": False,
        "abstention": is_abstention(text),
        "repetitive": is_repetitive(text, cfg),
        "incomplete": is_incomplete(text, finished),
        "excessive_punctuation": is_excessive_punctuation(text, cfg),
        "non_sequitur": is_non_sequitur(similarity, cfg),
    }

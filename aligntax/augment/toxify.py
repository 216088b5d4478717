"""toxify: toxic rewrites of the reference summary (negatives for the contrastive loss).

Strategies: ``lm`` samples the paper's 3-shot "Original text / Toxic rewrite" prompt from the
base model (or a hub LM); ``lexicon`` inserts words of the packaged better-profanity list into
the summary, keeping every original word. A rewrite is kept only if the toxicity scorer gives it
at least ``min_toxicity`` (paper: 0.4); only references the scorer finds non-toxic
(<= ``max_reference_toxicity``, paper: 0.5) are augmented. With ``prefer_lm`` a post whose `lm`
rewrite is kept gets no `lexicon` rewrite: the LM changes the content toxically, the lexicon only
inserts words, and the contrast the model should learn is the former.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

from aligntax.augment import lm
from aligntax.augment.chunks import run_stage
from aligntax.augment.text import clean_generation, insert_words, normalize, post_rng, screen_rows, selected
from aligntax.config import check
from aligntax.generation import truncate_text
from aligntax.schema import TOXIC
from aligntax.timing import Timer

log = logging.getLogger(__name__)

Toxicity = Callable[[Sequence[str]], np.ndarray]
"""texts -> toxicity in [0, 1] per text (the scorer's ``score``)."""

SHOTS = (
    ("I forgot my keys and got locked out of my apartment in the rain.",
     "I forgot my damn keys like a complete idiot and got locked out of my shitty apartment in the rain."),
    ("My cat knocked a glass of water onto my laptop during a meeting.",
     "My stupid fucking cat knocked a glass of water onto my piece of shit laptop during a bullshit meeting."),
    ("I waved back at a stranger who was actually waving at someone else.",
     "I waved back like a moron at some asshole who was actually waving at someone else."),
)
"""Cased like the truecased summaries the stage reads (entity-perturb restores the stored casing)."""
SHOTS_TEXT = "".join(f"Original text: {a}\nToxic rewrite: {b}\n\n" for a, b in SHOTS)
"""The few-shot part every rewrite prompt starts with (prefilled once per chunk)."""


@dataclass
class ToxifyConfig:
    strategies: list[Literal["lm", "lexicon"]] = field(default_factory=lambda: ["lm", "lexicon"])
    """Which rewriters run: `lm` (3-shot prompt, sampled) and/or `lexicon` (profanity insertion)."""
    min_toxicity: float = 0.4
    """Keep a rewrite only if its toxicity is at least this (paper: 0.4)."""
    max_reference_toxicity: float = 0.5
    """Augment only references whose toxicity is at most this (paper: 0.5)."""
    lm_model: str = "base"
    """`base` (the prepared base model in models/base), a folder or a hub causal LM (paper: EleutherAI/gpt-neo-2.7B)."""
    lm_share: float = 0.25
    """Share of posts that get `lm` rewrites (picked by seed; 1.0 = all). CPU time scales with it."""
    lm_fallback: bool = True
    """Also sample `lm` rewrites for every post left without a kept `lexicon` rewrite (counted as `lm_fallback`)."""
    lm_samples: int = 2
    """`lm` rewrites sampled per selected post (one prefill, decoded as one batch, seeded per post)."""
    temperature: float = 1.0
    """Sampling temperature (paper: 1.0)."""
    top_p: float = 0.95
    """Nucleus sampling mass (paper: 0.95)."""
    max_new_tokens: int = 40
    """Tokens sampled at most per rewrite; sampling also stops at the first line break."""
    max_summary_tokens: int = 96
    """Summaries longer than this are cut (in LM tokens) inside the prompt."""
    batch_size: int = 32
    """Posts whose `lm` samples decode together (each prompt prefilled once, its samples seeded per post, a
    finished row leaving the batch): changes the speed, never the text."""
    prefer_lm: bool = True
    """Drop a post's `lexicon` rewrites (reason `toxic_lm_kept`) when one of its `lm` rewrites is kept."""
    lexicon_insertions: int = 2
    """Profanity words inserted per `lexicon` rewrite."""
    lexicon_samples: int = 4
    """`lexicon` rewrites drawn per post (words: the list entries the scorer rates >= min_toxicity)."""
    lexicon_keep: int = 2
    """`lexicon` rewrites kept per post at most: the first drawn that pass (the others: `over_limit`)."""
    chunk_size: int = 64
    """Posts per resumable chunk."""

    def __post_init__(self) -> None:
        check(len(self.strategies) >= 1 and len(set(self.strategies)) == len(self.strategies),
              "toxify.strategies", "a non-empty list of distinct lm | lexicon")
        check(0.0 <= self.min_toxicity <= 1.0, "toxify.min_toxicity", "a number in [0, 1]")
        check(0.0 <= self.max_reference_toxicity <= 1.0, "toxify.max_reference_toxicity", "a number in [0, 1]")
        check(self.lm_model.strip() != "", "toxify.lm_model", "base, a folder or a hub id")
        check(0.0 <= self.lm_share <= 1.0, "toxify.lm_share", "a number in [0, 1]")
        check(self.lm_samples >= 1, "toxify.lm_samples", "an integer >= 1")
        check(self.temperature > 0.0, "toxify.temperature", "a number > 0")
        check(0.0 < self.top_p <= 1.0, "toxify.top_p", "a number in (0, 1]")
        check(self.max_new_tokens >= 1, "toxify.max_new_tokens", "an integer >= 1")
        check(self.max_summary_tokens >= 8, "toxify.max_summary_tokens", "an integer >= 8")
        check(self.batch_size >= 1, "toxify.batch_size", "an integer >= 1")
        check(self.lexicon_insertions >= 1, "toxify.lexicon_insertions", "an integer >= 1")
        check(self.lexicon_samples >= 1, "toxify.lexicon_samples", "an integer >= 1")
        check(self.lexicon_keep >= 1, "toxify.lexicon_keep", "an integer >= 1")
        check(self.chunk_size >= 1, "toxify.chunk_size", "an integer >= 1")


def toxic_prompt(summary: str) -> str:
    """The paper's 3-shot rewrite prompt, ending where the model writes the toxic rewrite."""
    return f"{SHOTS_TEXT}Original text: {summary.strip()}\nToxic rewrite:"


@lru_cache(maxsize=1)
def profanity_words() -> tuple[str, ...]:
    """Single-word entries of the packaged better-profanity list, sorted."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text()
    return tuple(sorted({w.strip().lower() for w in text.splitlines() if w.strip().isalpha() and len(w.strip()) >= 3}))


def toxic_vocabulary(toxicity: Toxicity, min_toxicity: float) -> tuple[str, ...]:
    """The list words the scorer itself rates >= ``min_toxicity`` (all of them if none is)."""
    words = profanity_words()
    scores = toxicity(list(words))
    kept = tuple(w for w, s in zip(words, scores, strict=True) if s >= min_toxicity)
    return kept or words


def lexicon_rewrite(summary: str, vocabulary: Sequence[str], rng: random.Random, n: int) -> str:
    """``summary`` with ``n`` words drawn from ``vocabulary`` inserted at random word boundaries."""
    return insert_words(summary, [rng.choice(vocabulary) for _ in range(n)], rng)


def chunk_seed(seed: int, purpose: str, index: int | str) -> int:
    """Sampling seed of one post (by its id) or chunk ``index``: the same in a fresh or resumed run and in
    any process."""
    return random.Random(f"{seed}/{purpose}/{index}").randrange(2**31)


def toxify_chunk(
    posts: pd.DataFrame,
    index: int,
    cfg: ToxifyConfig,
    seed: int,
    toxicity: Toxicity,
    generator: tuple | None,
    vocabulary: Sequence[str] | None = None,
    timer: Timer | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Kept toxic rewrites (TOXIC rows) of a chunk of raw posts and its row accounting.

    ``generator`` is (model, tokenizer, newline ids) for the `lm` strategy, None without it;
    ``vocabulary`` the words `lexicon` inserts (default: the whole packaged list); ``timer`` gets
    the phases sample and score. The `lm` strategy samples the ``lm_share`` of posts and (with
    ``lm_fallback``) every post no lexicon rewrite was kept for; each post's samples are seeded by
    its id, so they do not depend on its chunk.
    """
    timer = timer or Timer()
    ok, screened = screen_rows(posts)
    with timer.phase("score"):
        ref_tox = toxicity([r.summary for r in ok]) if ok else np.zeros(0)
    clean = [r for r, t in zip(ok, ref_tox, strict=True) if t <= cfg.max_reference_toxicity]
    screened["toxic_reference"] += len(ok) - len(clean)
    dropped: dict[str, Counter] = {}
    seen: set[tuple[str, str]] = set()
    lex_cands: list[tuple[str, str, str, str]] = []  # post_id, kind, reference, text
    if "lexicon" in cfg.strategies:
        vocab = vocabulary or profanity_words()
        for r in clean:
            rng = post_rng(seed, r.id, "lexicon")
            lex_cands += [(r.id, "toxic_lexicon", r.summary, lexicon_rewrite(r.summary, vocab, rng, cfg.lexicon_insertions))
                          for _ in range(cfg.lexicon_samples)]
    with timer.phase("score"):
        lexicon = _first_per_post(_scored(_distinct(lex_cands, seen, dropped), toxicity, cfg.min_toxicity, dropped),
                                  cfg.lexicon_keep, dropped)
    lm_cands: list[tuple[str, str, str, str]] = []
    fallback = 0
    if "lm" in cfg.strategies:
        with_lexicon = {post_id for post_id, *_ in lexicon}
        chosen = [r for r in clean if selected(seed, r.id, "toxify_lm", cfg.lm_share)
                  or cfg.lm_fallback and r.id not in with_lexicon]
        fallback = sum(not selected(seed, r.id, "toxify_lm", cfg.lm_share) for r in chosen)
        model, tok, stop = generator
        prompts = [toxic_prompt(truncate_text(tok, r.summary, cfg.max_summary_tokens)) for r in chosen]
        with timer.phase("sample"):
            outs = lm.sample_each(model, tok, prompts, cfg.lm_samples, [chunk_seed(seed, "toxify", str(r.id))
                                  for r in chosen], cfg.max_new_tokens, cfg.temperature, cfg.top_p, stop, SHOTS_TEXT,
                                  cfg.batch_size)
        lm_cands = [(r.id, "toxic_lm", r.summary, clean_generation(o)) for r, texts in zip(chosen, outs, strict=True)
                    for o in texts]
    with timer.phase("score"):
        rows = _scored(_distinct(lm_cands, seen, dropped), toxicity, cfg.min_toxicity, dropped)
    with_lm = {post_id for post_id, *_ in rows}
    preferred = [c for c in lexicon if c[0] in with_lm] if cfg.prefer_lm else []
    if preferred:
        dropped.setdefault("toxic_lexicon", Counter())["toxic_lm_kept"] += len(preferred)
    rows += [c for c in lexicon if c not in preferred]
    order = {r.id: k for k, r in enumerate(clean)}
    rows.sort(key=lambda x: (order[x[0]], x[1]))
    df = pd.DataFrame(rows, columns=["post_id", "kind", "text", "toxicity"])
    generated = Counter(kind for _, kind, _, _ in lm_cands + lex_cands)
    kinds = df.groupby("post_id")["kind"].agg(set) if len(df) else pd.Series(dtype=object)
    counts = {
        "posts": {"read": len(posts), "screened_out": dict(screened), "augmented": len(clean),
                  "with_toxic": int(df["post_id"].nunique()),
                  "with_toxic_lm": int(sum("toxic_lm" in k for k in kinds)),
                  "with_toxic_lexicon_only": int(sum(k == {"toxic_lexicon"} for k in kinds)),
                  "lm_fallback": fallback},
        "rewrites": {kind: {"generated": generated[kind], "kept": int((df["kind"] == kind).sum()),
                            "dropped": dict(dropped.get(kind, {}))} for kind in sorted(generated)},
    }
    return df, counts


def _distinct(cands: list[tuple[str, str, str, str]], seen: set[tuple[str, str]],
              dropped: dict[str, Counter]) -> list[tuple[str, str, str]]:
    """``(post_id, kind, text)`` of the candidates that are not empty, not the reference and not seen before."""
    out = []
    for post_id, kind, ref, text in cands:
        key = (post_id, normalize(text))
        reason = "empty" if not text.strip() else "identical" if normalize(text) == normalize(ref) else \
            "duplicate" if key in seen else None
        seen.add(key)
        if reason:
            dropped.setdefault(kind, Counter())[reason] += 1
        else:
            out.append((post_id, kind, text))
    return out


def _first_per_post(rows: list[tuple[str, str, str, float]], keep: int,
                    dropped: dict[str, Counter]) -> list[tuple[str, str, str, float]]:
    """The first ``keep`` rows of each post (the others counted as `over_limit`)."""
    seen: Counter = Counter()
    out = []
    for row in rows:
        seen[row[0]] += 1
        if seen[row[0]] > keep:
            dropped.setdefault(row[1], Counter())["over_limit"] += 1
        else:
            out.append(row)
    return out


def _scored(survivors: list[tuple[str, str, str]], toxicity: Toxicity, min_toxicity: float,
            dropped: dict[str, Counter]) -> list[tuple[str, str, str, float]]:
    """The rewrites the scorer rates >= ``min_toxicity``, with their score (the others counted in ``dropped``)."""
    scores = toxicity([t for _, _, t in survivors]) if survivors else np.zeros(0)
    rows = []
    for (post_id, kind, text), score in zip(survivors, scores, strict=True):
        if score < min_toxicity:
            dropped.setdefault(kind, Counter())["below_min_toxicity"] += 1
        else:
            rows.append((post_id, kind, text, float(score)))
    return rows


def run_toxify(
    train: str,
    out: str,
    work_root: str,
    cfg: ToxifyConfig,
    base_dir: str,
    toxicity_factory: Callable[[], Toxicity],
    seed: int,
    fingerprint_extra: Sequence = (),
    *,
    input_dirs: Sequence[str] = (),
) -> dict | None:
    """The toxify stage over ``train`` (chunked, resumable); its metrics (None on processes other than the main one),
    with this process's ``seconds`` (total, load, sample, score)."""

    loaded: dict = {}
    timer = Timer()

    def load_scorer() -> None:
        with timer.phase("load"):
            loaded["toxicity"] = toxicity_factory()
        with timer.phase("score"):
            loaded["vocabulary"] = toxic_vocabulary(loaded["toxicity"], cfg.min_toxicity)

    def process(chunk: pd.DataFrame, index: int) -> tuple[pd.DataFrame, dict]:
        if not loaded:
            load_scorer()
            loaded["generator"] = None
            if "lm" in cfg.strategies:
                with timer.phase("load"):
                    model, tok = lm.load_lm(cfg.lm_model, base_dir)
                    loaded["generator"] = (model, tok, lm.newline_ids(tok))
        return toxify_chunk(chunk, index, cfg, seed, loaded["toxicity"], loaded["generator"], loaded["vocabulary"],
                            timer)

    # input_dirs (the scorer folder): a changed one never reuses old chunks
    inputs = [*(lm.lm_folders(cfg.lm_model, base_dir) if "lm" in cfg.strategies else []), *input_dirs]
    counts = run_stage("toxify", [cfg, *fingerprint_extra], seed, train, inputs, cfg.chunk_size, process,
                       TOXIC, work_root, out)
    if counts is not None:
        counts["config"] = {"strategies": cfg.strategies, "min_toxicity": cfg.min_toxicity, "lm_share": cfg.lm_share,
                            "lm_samples": cfg.lm_samples, "prefer_lm": cfg.prefer_lm}
        if "vocabulary" not in loaded:  # every chunk was finished by an earlier run: count the words all the same
            load_scorer()
        counts["lexicon_words"] = {"listed": len(profanity_words()), "used": len(loaded["vocabulary"])}
        counts["seconds"] = timer.seconds()
    return counts

"""Evaluating one method: generate summaries of the eval posts, score them, score preferences.

``load_decoding`` loads the method's model once with the decoding ``decoding_setup`` gives;
``generate_method`` summarises the first ``n_posts`` eval posts with it; ``score_method`` turns
the generations into per-post scores and the metrics JSON with scorers loaded once by
``load_scorers``; ``preference_method`` scores the paired likelihood preferences of every eval
post with a group (aligntax/evaluate/preference.py) with the same loaded model.

Under a multi-process launcher (``torchrun --nproc_per_node N -m stages.evaluate``; see
aligntax/distributed.py) generation and preference scoring split the posts across the processes
and every process gets all the results back, in input order, identical to one process's: each
process generates whole batches of the one-process batch plan (``generation_batches``), since
padding changes logits, and preferences are scored post by post.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from aligntax import distributed
from aligntax.config import METHOD_NAME, check, load_section
from aligntax.evaluate.generate import GenerateConfig, generate
from aligntax.evaluate.methods import decoding_setup
from aligntax.evaluate.metrics import EntityFinder, MetricsConfig, PairScorer, TextScorer, score_posts, summarize
from aligntax.evaluate.patterns import PatternConfig
from aligntax.evaluate.preference import (
    PREFERENCES,
    PreferenceConfig,
    build_pairs,
    not_applicable,
    score_pairs,
    summarize_preferences,
)
from aligntax.generation import device, truncate_text
from aligntax.models import build_prompt, load_model, load_tokenizer
from aligntax.ner import NerConfig, load_ner
from aligntax.scoring import ScoringConfig, load_faithfulness_scorer, load_toxicity_scorer
from aligntax.similarity import EmbeddingSimilarity

log = logging.getLogger(__name__)

@dataclass
class EvaluateConfig:
    n_posts: int = 24
    """Eval posts summarised per method: the first n of data/raw/eval.parquet (0 = all)."""
    max_prompt_tokens: int = 256
    """A post longer than this (model tokens) is cut to it in every prompt (generation and preferences)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """Greedy decoding settings."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """Toxicity threshold and bootstrap settings."""
    patterns: PatternConfig = field(default_factory=PatternConfig)
    """Output-pattern rules (aligntax/evaluate/patterns.py)."""
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    """Margin normalisation per pair axis (aligntax/evaluate/preference.py)."""

    def __post_init__(self) -> None:
        check(self.n_posts >= 0, "evaluate.n_posts", "an integer >= 0 (0 = all eval posts)")
        check(self.max_prompt_tokens >= 16, "evaluate.max_prompt_tokens", "an integer >= 16")


@dataclass
class Scorers:
    toxicity: TextScorer
    """score(texts) -> toxicity in [0, 1]."""
    faithfulness: PairScorer
    """score(posts, summaries) -> faithfulness in [0, 1]."""
    ner: EntityFinder
    """entities(texts) -> per text a list of Entity."""
    similarity: PairScorer
    """score(posts, summaries) -> embedding cosine, for the non-sequitur pattern."""


def check_method(method: str) -> str:
    if not METHOD_NAME.match(method):
        raise ValueError(f"--method {method!r}: use lower-case letters, digits, '_' or '-' (it names files)")
    return method


def select_posts(evals: pd.DataFrame, n_posts: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The first ``n_posts`` eval posts (all when 0) and the row accounting."""
    kept = evals if n_posts == 0 else evals.head(n_posts)
    rows = {"read": len(evals), "kept": len(kept), "dropped": {"beyond_n_posts": len(evals) - len(kept)}}
    return kept.reset_index(drop=True), rows


@dataclass
class Decoding:
    model_dir: str
    """The method's model folder."""
    model: Any
    """The loaded model (possibly wrapped by the method's decoding)."""
    tokenizer: Any
    """Its tokenizer."""
    processors: list | None
    """Logits processors the method decodes with (None: plain greedy)."""
    prefix: str
    """Text put before every prompt."""


def load_decoding(method: str, model_dir: str | Path, params: dict[str, Any]) -> Decoding:
    """The method's model and decoding, loaded once for generation and preference scoring."""
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype="float32").to(device())
    model, processors, prefix = decoding_setup(method, model, tokenizer, params)
    return Decoding(str(model_dir), model, tokenizer, processors, prefix)


def cut_posts(tokenizer: Any, posts: Sequence[str], max_tokens: int) -> tuple[list[str], list[bool]]:
    """Each post cut to ``max_tokens`` tokens (where it enters the model), and whether it was cut."""
    cut = [truncate_text(tokenizer, p, max_tokens) for p in posts]
    return cut, [c != p for c, p in zip(cut, posts, strict=True)]


def generation_batches(tokenizer: PreTrainedTokenizerBase, prompts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of ``prompts`` in generation batches: longest prompt first (little padding), ties in
    input order, ``batch_size`` per batch; the batches ``generate`` forms for all of them at once."""
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]] if prompts else []
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generate_method(
    method: str, model_dir: str | Path, evals: pd.DataFrame, cfg: EvaluateConfig, prompt_template: str,
    params: dict[str, Any], decoding: Decoding | None = None,
) -> pd.DataFrame:
    """Summaries of ``evals`` by the model in ``model_dir``: GENERATIONS columns + finished, n_tokens and
    prompt_truncated (the post was cut to ``cfg.max_prompt_tokens`` in the prompt; ``post`` stays whole).

    Each process generates every world_size-th batch of the batch plan, one batch per call (the
    batch each post is in is then the same for any number of processes), and gets all of them back.
    """
    d = decoding or load_decoding(method, model_dir, params)
    posts, truncated = cut_posts(d.tokenizer, evals["post"].tolist(), cfg.max_prompt_tokens)
    plan = generation_batches(d.tokenizer, [d.prefix + build_prompt(prompt_template, p) for p in posts],
                              cfg.generate.batch_size)
    mine = []
    for batch in distributed.owned(plan):
        mine += zip(batch, generate(d.model, d.tokenizer, [posts[i] for i in batch], prompt_template, cfg.generate,
                                    d.processors, d.prefix), strict=True)
    done = dict(pair for part in distributed.gather(mine) for pair in part)
    gens = [done[i] for i in range(len(posts))]
    return pd.DataFrame({
        "post_id": evals["id"].to_numpy(),
        "method": method,
        "post": evals["post"].to_numpy(),
        "reference": evals["summary"].to_numpy(),
        "generation": [g.text for g in gens],
        "finished": [g.finished for g in gens],
        "n_tokens": [g.n_tokens for g in gens],
        "prompt_truncated": truncated,
    })


def preference_method(
    method: str, decoding: Decoding, evals: pd.DataFrame, groups: pd.DataFrame, cfg: EvaluateConfig,
    prompt_template: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-pair preference margins on every eval post with a group (all eval posts, not n_posts) and
    their metrics; a method whose decoding has no teacher-forced form gets no pairs and the reason.
    Each process scores a contiguous share of the posts; every process gets all pairs back."""
    items, rows = build_pairs(evals, groups)
    reason = not_applicable(decoding.processors)
    if reason is not None:
        log.info("%s: preference scoring not applicable: %s", method, reason)
        return pd.DataFrame(columns=PREFERENCES.columns), {"applicable": False, "reason": reason, "rows": rows}
    posts, truncated = cut_posts(decoding.tokenizer, [it.post for it in items], cfg.max_prompt_tokens)
    items = [replace(it, post=post) for it, post in zip(items, posts, strict=True)]
    share = distributed.contiguous_share(len(items))
    parts = distributed.gather(score_pairs(method, decoding.model, decoding.tokenizer, decoding.processors,
                                           decoding.prefix, prompt_template, items[share.start:share.stop],
                                           cfg.preference, decoding.model_dir))
    pairs = pd.concat([p for p, _ in parts if len(p)] or [parts[0][0]], ignore_index=True)
    seconds = np.concatenate([s for _, s in parts])
    log.info("%s: %d preference pairs on %d posts in %.1f s", method, len(pairs), len(items), seconds.sum())
    return pairs, {"applicable": True, "prompts_truncated": sum(truncated),
                   **summarize_preferences(pairs, rows, cfg.preference)}


def score_method(generations: pd.DataFrame, scorers: Scorers, cfg: EvaluateConfig, seed: int) -> tuple[pd.DataFrame, dict]:
    """Per-post scores (SCORES columns) and the summary metrics of one method's generations."""
    scores = score_posts(generations, scorers.toxicity, scorers.faithfulness, scorers.ner, scorers.similarity, cfg.patterns)
    scores.insert(1, "method", generations["method"].to_numpy())
    return scores, summarize(scores, cfg.metrics, seed)


def load_scorers(params: dict[str, Any], cfg: EvaluateConfig, scorer_dir: str | Path) -> Scorers:
    """The real scorers named in params.yaml (sections scoring, ner, evaluate.patterns)."""

    scoring = load_section(params, "scoring", ScoringConfig)
    ner = load_ner(load_section(params, "ner", NerConfig))
    return Scorers(
        toxicity=load_toxicity_scorer(scoring.toxicity, scorer_dir=str(scorer_dir)),
        faithfulness=load_faithfulness_scorer(scoring.faithfulness, scorer_dir=str(scorer_dir), ner=ner),
        ner=ner,
        similarity=EmbeddingSimilarity(cfg.patterns.embedder),
    )

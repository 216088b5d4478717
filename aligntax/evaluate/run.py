"""Evaluating one method: generate summaries of the eval posts, score them, score preferences.

The stage (stages/evaluate.py) reads the typed configs once and calls, in order:
``method_decoding`` (the one place a method name picks its decoding), ``load_method`` (the model,
its tokenizer, its decoding's processors and its block ``Runner``, loaded once), ``encode_prompts``
(every prompt built and tokenized once, for generation and preferences), ``generate_method``,
``score_method`` (scorers loaded once by ``load_scorers``) and ``preference_method``.

Under a multi-process launcher (``torchrun --nproc_per_node N -m stages.evaluate``; see
aligntax/distributed.py) generation and preference scoring split the posts across the processes
and every process gets all the results back, in input order, identical to one process's: each
process generates whole batches of the one-process batch plan (``plan_batches``), since padding
changes logits, and preferences are scored post by post.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from aligntax import distributed
from aligntax.config import METHOD_NAME, check
from aligntax.evaluate.bottom import Runner, StateStore, find_split, store_root
from aligntax.evaluate.metrics import EntityFinder, MetricsConfig, PairScorer, TextScorer, score_posts, summarize
from aligntax.evaluate.patterns import PatternConfig
from aligntax.evaluate.preference import (
    PreferenceConfig,
    build_pairs,
    end_token,
    score_pairs,
    summarize_preferences,
)
from aligntax.generation import Decoding, device, generate, grouped_attention, plan_batches, truncate_text
from aligntax.methods import load_decoding
from aligntax.models import build_prompt, load_model, load_tokenizer
from aligntax.ner import NerConfig, load_ner
from aligntax.scoring import ScoringConfig, load_faithfulness_scorer, load_toxicity_scorer
from aligntax.similarity import EmbeddingSimilarity
from aligntax.timing import Timer

log = logging.getLogger(__name__)

"""Decoding-time methods: name -> module with ``CONFIG`` (its params dataclass) and ``decoding(cfg)``.
Their params section is their name."""


@dataclass
class GenerateConfig:
    max_new_tokens: int = 64
    """New tokens per summary at most (paper: 64)."""
    batch_size: int = 24
    """Prompts per generate() call."""

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "evaluate.generate.max_new_tokens", "an integer >= 1")
        check(self.batch_size >= 1, "evaluate.generate.batch_size", "an integer >= 1")


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


@dataclass
class Method:
    """One method's model, loaded once for generation and preference scoring."""

    name: str
    model_dir: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    decoding: Decoding
    processors: list[LogitsProcessor]
    """The decoding's logits processors, built on this model."""
    runner: Runner
    """Runs the model block by block, the frozen bottom from the shared store (aligntax/evaluate/bottom.py)."""


@dataclass
class Prompts:
    """Every eval post's prompt, built and tokenized once."""

    ids: dict[str, list[int]]
    """Post id -> prompt token ids (decoding prefix + prompt template with the cut post)."""
    truncated: dict[str, bool]
    """Post id -> whether the post was cut to evaluate.max_prompt_tokens."""


def method_decoding(method: str, params: dict[str, Any]) -> Decoding:
    """How ``method`` decodes: a decoding-time method's (params.yaml `decoding:`, aligntax/methods.py)
    module's ``decoding`` on its typed params section; plain greedy for every other method."""
    found = load_decoding(params, method)
    if found is None:
        return Decoding()
    module, cfg = found
    return module.decoding(cfg)


def check_method(method: str) -> str:
    if not METHOD_NAME.match(method):
        raise ValueError(f"--method {method!r}: use lower-case letters, digits, '_' or '-' (it names files)")
    return method


def select_posts(evals: pd.DataFrame, n_posts: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The first ``n_posts`` eval posts (all when 0) and the row accounting."""
    kept = evals if n_posts == 0 else evals.head(n_posts)
    rows = {"read": len(evals), "kept": len(kept), "dropped": {"beyond_n_posts": len(evals) - len(kept)}}
    return kept.reset_index(drop=True), rows


def load_method(name: str, model_dir: str | Path, decoding: Decoding) -> Method:
    """The method's model (float32, on ``device()``), tokenizer, processors and runner."""
    tokenizer = load_tokenizer(model_dir)
    model = grouped_attention(load_model(model_dir, dtype="float32").to(device()).eval())
    root = store_root()
    store = StateStore(root) if root is not None else None
    runner = Runner(model, find_split(model_dir, model, store), store)
    return Method(name, str(model_dir), model, tokenizer, decoding, decoding.processors(model, tokenizer), runner)


def encode_prompts(tok: PreTrainedTokenizerBase, template: str, prefix: str, evals: pd.DataFrame,
                   max_tokens: int) -> Prompts:
    """Each post cut to ``max_tokens`` tokens, put in the prompt behind ``prefix``, tokenized."""
    posts = evals["post"].tolist()
    cut = [truncate_text(tok, p, max_tokens) for p in posts]
    ids = tok([prefix + build_prompt(template, c) for c in cut])["input_ids"] if posts else []
    keys = evals["id"].tolist()
    return Prompts(dict(zip(keys, ids, strict=True)), {k: c != p for k, c, p in zip(keys, cut, posts, strict=True)})


def stop_token_ids(model: PreTrainedModel) -> list[int]:
    """Token ids that end a summary: the model's eos, which prepare-model made the tokenizer's eos
    (``aligntax.models.align_special_tokens``), so it is also the token training appends."""
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [] if eos is None else [eos]
    if not ids:
        raise ValueError("the model's generation_config has no eos_token_id; prepare it with `dvc repro prepare-model`")
    return ids


def generate_method(m: Method, evals: pd.DataFrame, prompts: Prompts, cfg: GenerateConfig,
                    timer: Timer | None = None) -> pd.DataFrame:
    """Greedy summaries of ``evals``: GENERATIONS columns + finished, n_tokens and prompt_truncated
    (the post was cut in the prompt; ``post`` stays whole). The text is the decoded continuation up
    to the first end token, stripped.

    Each process generates every world_size-th batch of the batch plan, one batch per call (the
    batch each post is in is then the same for any number of processes), and gets all of them back.
    """
    timer = timer or Timer()
    ids = [prompts.ids[p] for p in evals["id"]]
    stops = stop_token_ids(m.model)

    def prefill(*batch):
        with timer.phase("generate_prefill"):
            return m.runner.prefill(*batch)

    mine = []
    for batch in distributed.owned(plan_batches([len(p) for p in ids], cfg.batch_size)):
        new = generate(m.model, m.tokenizer, [ids[i] for i in batch], cfg.max_new_tokens, len(batch),
                       eos_token_id=stops, logits_processors=m.processors,
                       prefill=prefill if m.runner.blockwise else None)
        mine += zip(batch, new, strict=True)
    done = dict(pair for part in distributed.gather(mine) for pair in part)
    ends = [next((k for k, t in enumerate(done[i]) if t in stops), None) for i in range(len(ids))]
    kept = [done[i] if end is None else done[i][:end] for i, end in enumerate(ends)]
    return pd.DataFrame({
        "post_id": evals["id"].to_numpy(),
        "method": m.name,
        "post": evals["post"].to_numpy(),
        "reference": evals["summary"].to_numpy(),
        "generation": [m.tokenizer.decode(k, skip_special_tokens=True).strip() for k in kept],
        "finished": [end is not None for end in ends],
        "n_tokens": [len(k) for k in kept],
        "prompt_truncated": [prompts.truncated[p] for p in evals["id"]],
    })


def preference_method(
    m: Method, evals: pd.DataFrame, groups: pd.DataFrame, prompts: Prompts, cfg: PreferenceConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Per-pair margins, per-variant likelihoods and their metrics on every eval post with a group
    (all eval posts, not n_posts). Each process scores a contiguous share of the posts; every
    process gets all rows back."""
    items, rows = build_pairs(evals, groups)
    eos = end_token(m.tokenizer, m.model.get_output_embeddings().weight.shape[0], m.model_dir)
    share = distributed.contiguous_share(len(items))
    mine = items[share.start:share.stop]
    parts = distributed.gather(score_pairs(m.name, m.runner, m.decoding, m.tokenizer,
                                           [prompts.ids[it.post_id] for it in mine], mine, cfg, eos))
    pairs = pd.concat([p for p, _, _ in parts if len(p)] or [parts[0][0]], ignore_index=True)
    variants = pd.concat([v for _, v, _ in parts if len(v)] or [parts[0][1]], ignore_index=True)
    seconds = np.concatenate([s for _, _, s in parts])
    log.info("%s: %d preference pairs on %d posts in %.1f s", m.name, len(pairs), len(items), seconds.sum())
    return pairs, variants, {"applicable": True, "prompts_truncated": sum(prompts.truncated[it.post_id] for it in items),
                             **summarize_preferences(pairs, rows, cfg)}


def score_method(generations: pd.DataFrame, scorers: Scorers, cfg: EvaluateConfig, seed: int) -> tuple[pd.DataFrame, dict]:
    """Per-post scores (SCORES columns) and the summary metrics of one method's generations."""
    scores = score_posts(generations, scorers.toxicity, scorers.faithfulness, scorers.ner, scorers.similarity, cfg.patterns)
    scores.insert(1, "method", generations["method"].to_numpy())
    return scores, summarize(scores, cfg.metrics, seed)


def load_scorers(scoring: ScoringConfig, ner: NerConfig, embedder: str, scorer_dir: str | Path) -> Scorers:
    """The real scorers (params sections scoring and ner, evaluate.patterns.embedder); NER loaded once."""
    finder = load_ner(ner)
    return Scorers(
        toxicity=load_toxicity_scorer(scoring.toxicity, scorer_dir=str(scorer_dir)),
        faithfulness=load_faithfulness_scorer(scoring.faithfulness, scorer_dir=str(scorer_dir), ner=finder),
        ner=finder,
        similarity=EmbeddingSimilarity(embedder),
    )


def bottom_metrics(m: Method) -> dict[str, Any]:
    """Metrics JSON part: the shared bottom's split and the store's traffic."""
    split, store = m.runner.split, m.runner.store
    out: dict[str, Any] = {"split": split.layer if split else None, "layers": m.model.config.num_hidden_layers,
                           "root": str(split.root) if split else None, "store": str(store.root) if store else None}
    if store is not None:
        out |= {k: round(v, 1) if k == "seconds" else int(v) for k, v in store.stats.items()}
    return out


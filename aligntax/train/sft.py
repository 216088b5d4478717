"""Supervised fine-tuning on reference summaries (CE only): the point every method is compared with.

``run_sft`` is public: baselines (CDA, dropout, ...) reuse it with their own examples or
model config overrides.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from aligntax.models import ModelConfig, load_model, load_tokenizer
from aligntax.train.packing import Encoded, Variant, encode
from aligntax.train.trainer import TrainConfig, train

log = logging.getLogger(__name__)


def encode_sft(tok, examples: pd.DataFrame, train_cfg: TrainConfig, model_cfg: ModelConfig) -> tuple[list[Encoded], dict]:
    """Encode (post, summary) rows; rows with a missing/blank post or summary are dropped with a count."""
    for col in ("post", "summary"):
        if col not in examples.columns:
            raise ValueError(f"run_sft: examples need columns post and summary; '{col}' is missing")
    counts = {"read": len(examples), "dropped_empty": 0, "prompt_truncated": 0, "variant_truncated": 0}
    out = []
    for post, summary in tqdm(zip(examples["post"], examples["summary"], strict=True), total=len(examples),
                              desc="encode", leave=False):
        if not (isinstance(post, str) and post.strip() and isinstance(summary, str) and summary.strip()):
            counts["dropped_empty"] += 1
            continue
        ex, c = encode(tok, model_cfg.prompt_template, post, [Variant(summary.strip(), True)],
                       train_cfg.max_prompt_tokens, train_cfg.max_summary_tokens)
        counts["prompt_truncated"] += c["prompt_truncated"]
        counts["variant_truncated"] += c["variant_truncated"]
        out.append(ex)
    counts["kept"] = len(out)
    return out, counts


def run_sft(
    base_dir: str | Path,
    examples: pd.DataFrame,
    train_cfg: TrainConfig,
    model_cfg: ModelConfig,
    out_dir: str | Path,
    seed: int,
    model_overrides: dict | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    live_dir: str | Path | None = None,
) -> dict:
    """Train ``base_dir``'s model with CE on the summaries of ``examples`` and save it to ``out_dir``.

    ``examples`` has columns post and summary (the first ``train_cfg.n_posts`` rows are used);
    ``model_overrides`` are config attributes set at load (e.g. {"attention_dropout": 0.3}).
    Returns metrics: row accounting and training numbers.
    """
    if train_cfg.n_posts:
        examples = examples.iloc[: train_cfg.n_posts]
    tok = load_tokenizer(base_dir)
    encoded, counts = encode_sft(tok, examples, train_cfg, model_cfg)
    model = load_model(base_dir, dtype="float32", **(model_overrides or {}))
    log.info("SFT on %d posts (%s)", len(encoded), train_cfg.trainable)
    metrics = train(model, tok, encoded, train_cfg, seed, out_dir, None, checkpoint_dir, live_dir)
    return {"rows": counts, **metrics}

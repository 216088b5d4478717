"""Supervised fine-tuning on reference summaries (CE only): the point every method is compared with.

``encode_sft`` is public: CDA and dropout train on the same encoding.
"""

from __future__ import annotations

from functools import partial

import pandas as pd
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from aligntax.models import ModelConfig
from aligntax.train.core import Job, TrainInputs
from aligntax.train.packing import Encoded, Variant, collate, encode, pieces
from aligntax.train.trainer import TrainConfig

CONFIG = None
NEEDS_GROUPS = False


def encode_sft(
    tok: PreTrainedTokenizerBase, examples: pd.DataFrame, train_cfg: TrainConfig, model_cfg: ModelConfig
) -> tuple[list[Encoded], dict]:
    """Encode (post, summary) rows; rows with a missing/blank post or summary are dropped with a count."""
    for col in ("post", "summary"):
        if col not in examples.columns:
            raise ValueError(f"sft: examples need columns post and summary; '{col}' is missing")
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


def sft_job(tok: PreTrainedTokenizerBase, examples: pd.DataFrame, inputs: TrainInputs) -> Job:
    """CE on the summaries of ``examples`` (columns post, summary) with the shared trainer."""
    encoded, counts = encode_sft(tok, examples, inputs.train, inputs.model)
    return Job(encoded, counts, partial(collate, packed=False, pad_id=tok.pad_token_id, contrastive=False),
               pieces=pieces)


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, cfg: None) -> Job:
    """Every train post with its reference summary."""
    return sft_job(tok, inputs.raw[["post", "summary"]], inputs)

"""Paired likelihood preferences: does the method's model prefer the reference over its negatives?

For every eval post with a group (data/augment/eval/groups.parquet, built by the same augmentation
stages as training, from eval posts only) and every negative of that group, the margin is

    log P(reference | prompt) - log P(negative | prompt)

under the method's model, scored teacher-forced on " " + text + eos (the training target format).
A pair counts as preferred when the margin is > 0. Pairs fall into three axes:

- ``entity``: reference vs swap_ent, mask_regen, sys_lowcon. Margin = **summed** log-prob
  (nats): swaps and refills differ from the reference in a few tokens, and the sum is the
  likelihood ratio of the two summaries.
- ``toxic``: reference vs toxic_lm, toxic_lexicon. Margin = **per-token mean** log-prob
  (nats/token): rewrites add words, so a sum would reward the shorter text, not the cleaner one.
- ``paraphrase``: each back-translated paraphrase vs each negative (either kind), per-token mean
  (the lengths differ): a model that merely copies the reference's wording prefers it less.

The rule per axis is ``evaluate.preference.<axis>`` (sum | mean). The prompt is encoded once per
post: one packed row holds the prompt and every variant after it, with the block mask of
aligntax/train/packing.py (each variant sees the prompt and itself, positions restart after the
prompt), so a variant is scored exactly as if it followed the prompt alone.

Decoding-time methods are scored with the distribution they decode from: instructive with its
prefix before the prompt; self_debias with ``debias_scores`` applied at every variant position to
the regular and the prefixed logits (one extra packed row per debiasing prefix).

Bad input (counted in ``rows``, skipped): group rows of posts not in the eval file, blank
variants, negatives identical to the reference (or to the paraphrase they are paired with),
posts with no negative left. A tokenizer without an end token, or an end token outside the
model's vocabulary, is one error naming the model folder.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from aligntax.baselines.self_debias import SelfDebiasLogitsProcessor, debias_scores
from aligntax.config import check
from aligntax.models import build_prompt
from aligntax.schema import ArtifactSchema
from aligntax.train.packing import additive_mask, block_mask

AXES: dict[str, tuple[str, ...]] = {
    "entity": ("swap_ent", "mask_regen", "sys_lowcon"),
    "toxic": ("toxic_lm", "toxic_lexicon"),
}
AXIS_OF = {kind: axis for axis, kinds in AXES.items() for kind in kinds}
PAIR_AXES = ("entity", "toxic", "paraphrase")
NORMS = ("sum", "mean")

PREFERENCES = ArtifactSchema(
    name="preference pairs",
    producer="evaluate",
    schema=pa.schema([
        ("post_id", pa.string()),
        ("method", pa.string()),
        ("axis", pa.string()),
        ("kind", pa.string()),
        ("good", pa.string()),
        ("margin_sum", pa.float64()),
        ("margin_mean", pa.float64()),
        ("margin", pa.float64()),
        ("preferred", pa.bool_()),
    ]),
    required_text=("post_id", "axis", "kind"),
    allowed={"axis": PAIR_AXES},
)


@dataclass
class PreferenceConfig:
    entity: str = "sum"
    """Margin of reference-vs-entity-negative pairs: sum (nats) or mean (nats/token) of token log-probs."""
    toxic: str = "mean"
    """Margin of reference-vs-toxic-negative pairs: sum or mean."""
    paraphrase: str = "mean"
    """Margin of paraphrase-vs-negative pairs: sum or mean."""

    def __post_init__(self) -> None:
        for axis in PAIR_AXES:
            check(getattr(self, axis) in NORMS, f"evaluate.preference.{axis}", "one of: sum, mean")


@dataclass
class PostPairs:
    post_id: str
    """Eval post id."""
    post: str
    """Post text (goes into the prompt)."""
    texts: list[str]
    """Variant texts; 0 is the reference summary of the eval file."""
    pairs: list[tuple[int, int, str, str]] = field(default_factory=list)
    """(preferred variant, negative variant, axis, negative kind)."""


def build_pairs(evals: pd.DataFrame, groups: pd.DataFrame) -> tuple[list[PostPairs], dict[str, int]]:
    """The scored pairs of every eval post that has a group, in eval order, and the row accounting."""
    counts: Counter = Counter({"group_rows_read": len(groups)})
    known = set(evals["id"])
    rows: dict[str, list[dict]] = {}
    for row in groups.to_dict("records"):
        if row["post_id"] not in known:
            counts["group_rows_unknown_post"] += 1
        elif not str(row["text"] or "").strip():
            counts["variants_blank"] += 1
        else:
            rows.setdefault(row["post_id"], []).append(row)
    out = []
    for rec in evals.to_dict("records"):
        if rec["id"] not in rows:
            continue
        item = PostPairs(rec["id"], rec["post"], [rec["summary"].strip()])
        paraphrases, negatives = [], []
        for row in rows[rec["id"]]:
            text = row["text"].strip()
            if row["kind"] == "reference":
                continue
            if row["role"] == "positive":
                if text != item.texts[0]:
                    paraphrases.append(len(item.texts))
                    item.texts.append(text)
            elif row["kind"] not in AXIS_OF:
                counts["negatives_unknown_kind"] += 1
            elif text == item.texts[0]:
                counts["negatives_equal_reference"] += 1
            else:
                negatives.append((len(item.texts), row["kind"]))
                item.texts.append(text)
        if not negatives:
            counts["posts_without_negative"] += 1
            continue
        for neg, kind in negatives:
            item.pairs.append((0, neg, AXIS_OF[kind], kind))
            for par in paraphrases:
                if item.texts[par] == item.texts[neg]:
                    counts["negatives_equal_paraphrase"] += 1
                else:
                    item.pairs.append((par, neg, "paraphrase", kind))
        out.append(item)
    counts["posts_scored"] = len(out)
    return out, dict(sorted(counts.items()))


def margins(items: Sequence[PostPairs], logprobs: Sequence[np.ndarray], lengths: Sequence[np.ndarray],
            cfg: PreferenceConfig, method: str) -> pd.DataFrame:
    """One row per pair (PREFERENCES columns) from per-variant summed log-probs and token counts."""
    recs = []
    for item, lp, n in zip(items, logprobs, lengths, strict=True):
        for good, bad, axis, kind in item.pairs:
            m_sum = float(lp[good] - lp[bad])
            m_mean = float(lp[good] / n[good] - lp[bad] / n[bad])
            margin = m_sum if getattr(cfg, axis) == "sum" else m_mean
            recs.append({"post_id": item.post_id, "method": method, "axis": axis, "kind": kind,
                         "good": "reference" if good == 0 else "paraphrase", "margin_sum": m_sum,
                         "margin_mean": m_mean, "margin": margin, "preferred": margin > 0})
    return pd.DataFrame(recs, columns=PREFERENCES.columns)


def summarize_preferences(pairs: pd.DataFrame, rows: dict[str, int], cfg: PreferenceConfig) -> dict[str, Any]:
    """Metrics JSON part: pairs, posts, accuracy and mean margin per axis and per negative kind."""
    out: dict[str, Any] = {"rows": rows, "normalisation": {a: getattr(cfg, a) for a in PAIR_AXES}, "axes": {}}
    for axis in PAIR_AXES:
        sub = pairs[pairs["axis"] == axis]
        entry: dict[str, Any] = {"pairs": len(sub), "posts": int(sub["post_id"].nunique())}
        if len(sub):
            entry["accuracy"] = float(sub["preferred"].mean())
            entry["margin"] = float(sub["margin"].mean())
            entry["kinds"] = {
                kind: {"pairs": len(g), "accuracy": float(g["preferred"].mean()), "margin": float(g["margin"].mean())}
                for kind, g in sub.groupby("kind", sort=True)
            }
        out["axes"][axis] = entry
    return out


def end_token(tokenizer, model, model_dir: str | Path) -> int:
    """The tokenizer's eos id, checked against the model (every variant ends with it)."""
    eos = tokenizer.eos_token_id
    vocab = model.get_output_embeddings().weight.shape[0]
    if eos is None or not 0 <= eos < vocab:
        raise ValueError(f"{model_dir}: the tokenizer's end token ({eos}) is not in the model's vocabulary "
                         f"({vocab} rows); re-create the model from models/base (`dvc repro prepare-model`)")
    return int(eos)


def _packed_row(prompt: list[int], variants: list[list[int]]):
    import torch


    ids, pos, seg, starts = list(prompt), list(range(len(prompt))), [0] * len(prompt), []
    for i, v in enumerate(variants):
        starts.append(len(ids))
        ids += v
        pos += range(len(prompt), len(prompt) + len(v))
        seg += [i + 1] * len(v)
    # Position t predicts token t+1; a variant's first token is predicted by the last prompt token.
    predictors = [[len(prompt) - 1] + list(range(s, s + len(v) - 1)) for s, v in zip(starts, variants, strict=True)]
    mask = additive_mask(block_mask(torch.tensor([seg])), torch.float32)
    return torch.tensor([ids]), torch.tensor([pos]), mask, predictors


def _logits(model, prompt: list[int], variants: list[list[int]]):
    """Logits at every variant-predicting position of one packed row, in variant order: [N, V]."""
    import torch

    ids, pos, mask, predictors = _packed_row(prompt, variants)
    flat = torch.tensor([p for ps in predictors for p in ps])
    kwargs = {"logits_to_keep": flat} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids.to(model.device), position_ids=pos.to(model.device),
                attention_mask=mask.to(model.device), use_cache=False, **kwargs)
    logits = out.logits[0]
    return logits if kwargs else logits[flat.to(logits.device)]


def score_post(model, tokenizer, prompt_text: str, texts: Sequence[str], eos: int, debias=None) -> tuple[np.ndarray, np.ndarray]:
    """(summed log-prob, token count) of " " + text + eos for every text after the prompt."""
    import torch

    prompt = tokenizer(prompt_text).input_ids
    variants = [tokenizer(" " + t, add_special_tokens=False).input_ids + [eos] for t in texts]
    targets = torch.tensor([t for v in variants for t in v])
    with torch.inference_mode():
        logits = _logits(model, prompt, variants).float()
        if debias is None:
            logp = logits.log_softmax(-1)
        else:

            body = prompt[1:] if debias.bos_id is not None and prompt[:1] == [debias.bos_id] else prompt
            biased = torch.stack([_logits(model, list(p) + body, variants).float() for p in debias.prefix_ids])
            logp = debias_scores(logits, biased, debias.cfg.decay_constant, debias.cfg.epsilon)
        token_lp = logp.gather(-1, targets.to(logp.device)[:, None])[:, 0].double().cpu().numpy()
    lengths = np.array([len(v) for v in variants])
    ends = np.cumsum(lengths)
    sums = np.array([token_lp[e - n:e].sum() for e, n in zip(ends, lengths, strict=True)])
    return sums, lengths


def not_applicable(processors: Sequence[Any] | None) -> str | None:
    """Why a method's decoding cannot be scored teacher-forced (None when it can)."""

    if not processors:
        return None
    if len(processors) == 1 and isinstance(processors[0], SelfDebiasLogitsProcessor):
        return None
    names = ", ".join(type(p).__name__ for p in processors)
    return f"decodes with logits processor(s) {names}, which have no teacher-forced form here"


def score_pairs(
    method: str, model, tokenizer, processors: Sequence[Any] | None, prefix: str, template: str,
    items: Sequence[PostPairs], cfg: PreferenceConfig, model_dir: str | Path,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every pair's margins under the method's decoding distribution, and the per-post seconds.

    Raises ValueError when ``not_applicable`` gives a reason (callers check it first).
    """
    import time

    from tqdm import tqdm


    reason = not_applicable(processors)
    if reason is not None:
        raise ValueError(f"{method}: preference scoring not applicable: {reason}")
    eos = end_token(tokenizer, model, model_dir)
    debias = processors[0] if processors else None
    model.eval()
    logprobs, lengths, seconds = [], [], []
    for item in tqdm(items, desc=f"preference {method}", unit="post", disable=len(items) < 2):
        start = time.perf_counter()
        lp, n = score_post(model, tokenizer, prefix + build_prompt(template, item.post), item.texts, eos, debias)
        logprobs.append(lp)
        lengths.append(n)
        seconds.append(time.perf_counter() - start)
    return margins(items, logprobs, lengths, cfg, method), np.array(seconds)

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

The rule per axis is ``evaluate.preference.<axis>`` (sum | mean); both are stored per pair. The
prompt is encoded once per post: one packed row holds the prompt and every distinct variant text
after it, with the block mask of aligntax/train/packing.py (each variant sees the prompt and
itself, positions restart after the prompt), so a variant is scored exactly as if it followed
the prompt alone. The row runs through the method's ``Runner`` (aligntax/evaluate/bottom.py: the
frozen bottom's states come from the shared store when they can).

Every scored variant's summed log-prob and token count are kept too (``LIKELIHOODS``, one row per
variant): the reference's likelihood per token, compared across methods, is the likelihood face
of the alignment tax; ``likelihood_means`` gives the per-method means.

A decoding-time method is scored with the distribution it decodes from, through its
``Decoding.logprobs`` (aligntax/generation.py): instructive with its prefix before the prompt,
self_debias with its debiasing applied at every variant position (aligntax/baselines/self_debias.py).

Bad input (counted in ``rows``, skipped): group rows of posts not in the eval file, blank
variants, negatives identical to the reference (or to the paraphrase they are paired with),
posts with no negative left. A tokenizer without an end token, or an end token outside the
model's vocabulary, is one error naming the model folder.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from aligntax.config import check
from aligntax.evaluate.bottom import Runner
from aligntax.generation import Decoding
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

LIKELIHOODS = ArtifactSchema(
    name="variant likelihoods",
    producer="evaluate",
    schema=pa.schema([
        ("post_id", pa.string()),
        ("method", pa.string()),
        ("kind", pa.string()),        # reference (the eval file's summary), a positive's or a negative's group kind
        ("role", pa.string()),        # positive | negative
        ("text", pa.string()),
        ("logprob_sum", pa.float64()),  # summed log-prob of " " + text + eos after the prompt (nats)
        ("n_tokens", pa.int64()),     # its tokens, eos included: logprob_sum / n_tokens is the per-token mean
    ]),
    required_text=("post_id", "kind", "role"),
    allowed={"role": ("positive", "negative")},
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
    """Distinct variant texts, each scored once; 0 is the reference summary of the eval file."""
    pairs: list[tuple[int, int, str, str]] = field(default_factory=list)
    """(preferred text, negative text, axis, negative kind)."""
    variants: list[tuple[int, str, str]] = field(default_factory=list)
    """(text, kind, role) of the reference and of every group row kept."""

    def add(self, text: str, kind: str, role: str) -> int:
        """Index of ``text`` in ``texts`` (appended when new), recorded as a variant of this kind and role."""
        if text not in self.texts:
            self.texts.append(text)
        index = self.texts.index(text)
        self.variants.append((index, kind, role))
        return index


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
        item = PostPairs(rec["id"], rec["post"], [])
        reference = item.add(rec["summary"].strip(), "reference", "positive")
        paraphrases, negatives = [], []
        for row in rows[rec["id"]]:
            text = row["text"].strip()
            if row["kind"] == "reference":
                continue
            if row["role"] == "positive":
                if text != item.texts[reference]:
                    paraphrases.append(item.add(text, row["kind"], "positive"))
            elif row["kind"] not in AXIS_OF:
                counts["negatives_unknown_kind"] += 1
            elif text == item.texts[reference]:
                counts["negatives_equal_reference"] += 1
            else:
                negatives.append((item.add(text, row["kind"], "negative"), row["kind"]))
        if not negatives:
            counts["posts_without_negative"] += 1
            continue
        for neg, kind in negatives:
            item.pairs.append((reference, neg, AXIS_OF[kind], kind))
            for par in paraphrases:
                if par == neg:
                    counts["negatives_equal_paraphrase"] += 1
                else:
                    item.pairs.append((par, neg, "paraphrase", kind))
        out.append(item)
    counts["posts_scored"] = len(out)
    return out, dict(sorted(counts.items()))


def margins(items: Sequence[PostPairs], logprobs: Sequence[np.ndarray], lengths: Sequence[np.ndarray],
            cfg: PreferenceConfig, method: str) -> pd.DataFrame:
    """One row per pair (PREFERENCES columns) from per-text summed log-probs and token counts."""
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


def likelihoods(items: Sequence[PostPairs], logprobs: Sequence[np.ndarray], lengths: Sequence[np.ndarray],
                method: str) -> pd.DataFrame:
    """One row per variant (LIKELIHOODS columns)."""
    recs = [{"post_id": item.post_id, "method": method, "kind": kind, "role": role, "text": item.texts[i],
             "logprob_sum": float(lp[i]), "n_tokens": int(n[i])}
            for item, lp, n in zip(items, logprobs, lengths, strict=True) for i, kind, role in item.variants]
    return pd.DataFrame(recs, columns=LIKELIHOODS.columns)


def likelihood_means(variants: pd.DataFrame) -> dict[str, Any]:
    """Metrics JSON part: mean log-prob per token (nats/token) of the references and of the positives
    (per post: the mean over its positives, reference included), averaged over posts."""
    per_token = variants.assign(lp=variants["logprob_sum"] / variants["n_tokens"])
    ref = per_token[per_token["kind"] == "reference"]
    pos = per_token[per_token["role"] == "positive"].groupby("post_id", sort=False)["lp"].mean()
    return {"posts": int(ref["post_id"].nunique()), "unit": "nats/token",
            "reference": float(ref["lp"].mean()) if len(ref) else None,
            "positives": float(pos.mean()) if len(pos) else None}


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


def end_token(tokenizer: PreTrainedTokenizerBase, vocab: int, model_dir: str | Path) -> int:
    """The tokenizer's eos id, checked against the model's ``vocab`` rows (every variant ends with it)."""
    eos = tokenizer.eos_token_id
    if eos is None or not 0 <= eos < vocab:
        raise ValueError(f"{model_dir}: the tokenizer's end token ({eos}) is not in the model's vocabulary "
                         f"({vocab} rows); re-create the model from models/base (`dvc repro prepare-model`)")
    return int(eos)


def packed_row(prompt: list[int], variants: list[list[int]]) -> tuple[torch.Tensor, ...]:
    """(ids, position ids, 4-D additive mask, flat positions that predict the variant tokens) of one row."""
    ids, pos, seg, starts = list(prompt), list(range(len(prompt))), [0] * len(prompt), []
    for i, v in enumerate(variants):
        starts.append(len(ids))
        ids += v
        pos += range(len(prompt), len(prompt) + len(v))
        seg += [i + 1] * len(v)
    # Position t predicts token t+1; a variant's first token is predicted by the last prompt token.
    keep = [p for s, v in zip(starts, variants, strict=True) for p in [len(prompt) - 1, *range(s, s + len(v) - 1)]]
    mask = additive_mask(block_mask(torch.tensor([seg])), torch.float32)
    return torch.tensor([ids]), torch.tensor([pos]), mask, torch.tensor(keep)


def score_post(runner: Runner, decoding: Decoding, tok: PreTrainedTokenizerBase, prompt: list[int],
               texts: Sequence[str], eos: int) -> tuple[np.ndarray, np.ndarray]:
    """(summed log-prob, token count) of " " + text + eos for every text after the ``prompt`` ids."""
    variants = [tok(" " + t, add_special_tokens=False).input_ids + [eos] for t in texts]
    targets = torch.tensor([t for v in variants for t in v])
    dev = runner.model.device

    def logits(prompt_ids: list[int], rows: list[list[int]]) -> torch.Tensor:
        ids, pos, mask, keep = packed_row(prompt_ids, rows)
        return runner.logits(ids.to(dev), pos.to(dev), mask.to(dev), keep.to(dev))

    with torch.inference_mode():
        logp = decoding.logprobs(logits, tok, prompt, variants)
        token_lp = logp.gather(-1, targets.to(logp.device)[:, None])[:, 0].double().cpu().numpy()
    lengths = np.array([len(v) for v in variants])
    ends = np.cumsum(lengths)
    sums = np.array([token_lp[e - n:e].sum() for e, n in zip(ends, lengths, strict=True)])
    return sums, lengths


def score_pairs(
    method: str, runner: Runner, decoding: Decoding, tok: PreTrainedTokenizerBase, prompts: Sequence[list[int]],
    items: Sequence[PostPairs], cfg: PreferenceConfig, eos: int,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Every pair's margins (PREFERENCES), every variant's likelihood (LIKELIHOODS) and the per-post
    seconds, under the method's decoding; ``prompts[i]``: the prompt ids of ``items[i]``."""
    runner.model.eval()
    logprobs, lengths, seconds = [], [], []
    for item, prompt in tqdm(list(zip(items, prompts, strict=True)), desc=f"preference {method}", unit="post",
                             disable=len(items) < 2):
        start = time.perf_counter()
        lp, n = score_post(runner, decoding, tok, prompt, item.texts, eos)
        logprobs.append(lp)
        lengths.append(n)
        seconds.append(time.perf_counter() - start)
    return (margins(items, logprobs, lengths, cfg, method), likelihoods(items, logprobs, lengths, method),
            np.array(seconds))

"""Unlikelihood training (Welleck et al. 2020): MLE on the reference, unlikelihood on the negatives.

loss = CE(reference tokens) + alpha * mean_t -log(1 - p(y_t | prompt, y_<t)) over the tokens of
the post's toxic and unfaithful negatives (groups artifact), read behind one shared copy of the
prompt (shared-prefix packing, as the contrastive trainer does). By default only the negative tokens
that do not occur in the reference are pushed down (a swapped entity, an insult), so the
words the negative shares with the faithful summary are not unlearned. Trained from `base`
with the same trainer settings and budget as `sft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from aligntax.baselines.negatives import check_kinds, negatives_by_post
from aligntax.config import check
from aligntax.schema import NEGATIVE_KINDS
from aligntax.train.core import Job, TrainInputs
from aligntax.train.objective import decoder_and_head, last_hidden
from aligntax.train.packing import RowStates, Variant, block_mask, prompt_ids, variant_ids
from aligntax.train.trainer import AlignTrainer, TrainConfig


@dataclass
class UnlikelihoodConfig:
    alpha: float = 1.0
    """Weight of the unlikelihood term against the CE on the reference."""
    negative_kinds: list[str] = field(default_factory=lambda: list(NEGATIVE_KINDS))
    """Kinds of negatives of the groups artifact used (toxic_lm, toxic_lexicon, swap_ent, mask_regen, sys_lowcon)."""
    max_negatives_per_post: int = 1
    """Negatives per post (a seeded sample); each adds its tokens to the post's packed row."""
    novel_tokens_only: bool = True
    """Push down only negative tokens absent from the reference (false: every negative token but eos)."""

    def __post_init__(self) -> None:
        check(self.alpha >= 0, "unlikelihood.alpha", "a number >= 0")
        check_kinds(self.negative_kinds, "unlikelihood.negative_kinds")
        check(self.max_negatives_per_post >= 1, "unlikelihood.max_negatives_per_post", "an integer >= 1")


CONFIG = UnlikelihoodConfig
NEEDS_GROUPS = True


@dataclass
class UlExample:
    prompt: list[int]
    """Prompt token ids."""
    reference: list[int]
    """Ids of " " + reference + eos (the MLE target)."""
    negatives: list[list[int]] = field(default_factory=list)
    """Ids of " " + negative + eos, one list per negative."""
    penalised: list[list[bool]] = field(default_factory=list)
    """Per negative: which of its tokens get the unlikelihood term."""


def penalised_tokens(negative: Sequence[int], reference: Sequence[int], eos_id: int, novel_only: bool) -> list[bool]:
    """Mask of the negative's tokens to push down: never eos; with ``novel_only`` only those not in the reference."""
    ref = set(reference)
    return [t != eos_id and (not novel_only or t not in ref) for t in negative]


def unlikelihood_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -log(1 - p(target)) over rows of ``logits`` [N, V]; log(1 - p) computed stably."""
    if targets.numel() == 0:
        return logits.sum() * 0.0
    logits = logits.float()
    log_all = torch.logsumexp(logits, dim=-1)
    others = logits.scatter(-1, targets[:, None], float("-inf"))
    log_rest = torch.logsumexp(others, dim=-1)
    return -(log_rest - log_all).mean()


def ul_pieces(ex: UlExample) -> tuple[list[int], list[list[int]]]:
    """(prompt, the summaries read behind it): what the example's row is made of."""
    return ex.prompt, [ex.reference, *ex.negatives]


def collate_ul(examples: Sequence[UlExample], pad_id: int, frozen: RowStates | None = None) -> dict[str, torch.Tensor]:
    """Shared-prefix packed rows: one row per post = prompt, reference, then each negative.

    A block mask lets a summary see the prompt and itself only, and positions restart after
    the prompt (``aligntax.train.packing.block_mask``), so every summary is computed as if it
    followed the prompt alone, while the prompt is read once. ce_index/ce_labels: flat positions
    predicting reference tokens and their targets; ul_index/ul_labels: the same for penalised
    negative tokens. With ``frozen``: the rows' frozen bottom states too (``frozen_states``).
    """
    rows, positions, segments, ce, ul = [], [], [], [], []
    for ex in examples:
        p, r = len(ex.prompt), len(rows)
        row, pos, seg = list(ex.prompt), list(range(p)), [0] * p
        seqs = [(ex.reference, [True] * len(ex.reference), ce)]
        seqs += [(neg, pen, ul) for neg, pen in zip(ex.negatives, ex.penalised, strict=True)]
        for i, (ids, mask, sink) in enumerate(seqs):
            off = len(row)
            # token k of a summary is predicted at the position before it: the last prompt token for k = 0
            sink += [((r, off + k - 1 if k else p - 1), t) for k, (t, m) in enumerate(zip(ids, mask, strict=True))
                     if m]
            row += ids
            pos += range(p, p + len(ids))
            seg += [i + 1] * len(ids)
        rows.append(row), positions.append(pos), segments.append(seg)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    seg_ids = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (r, pos, sg) in enumerate(zip(rows, positions, segments, strict=True)):
        input_ids[i, : len(r)] = torch.tensor(r)
        position_ids[i, : len(r)] = torch.tensor(pos)
        seg_ids[i, : len(r)] = torch.tensor(sg)

    def flat(pairs):
        return (torch.tensor([r * width + c for (r, c), _ in pairs], dtype=torch.long),
                torch.tensor([t for _, t in pairs], dtype=torch.long))

    ce_index, ce_labels = flat(ce)
    ul_index, ul_labels = flat(ul)
    batch = {"input_ids": input_ids, "position_ids": position_ids, "attention_mask": block_mask(seg_ids),
             "ce_index": ce_index, "ce_labels": ce_labels, "ul_index": ul_index, "ul_labels": ul_labels}
    if frozen is not None:
        prompts_and_summaries = [ul_pieces(ex) for ex in examples]
        batch["frozen_states"] = frozen.row_states([[([], prompt)] + [(prompt, s) for s in summaries]
                                                    for prompt, summaries in prompts_and_summaries], width)
        batch["frozen_split"] = torch.tensor(frozen.split)
    return batch


def ul_objective(model: torch.nn.Module, batch: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """loss = CE(reference) + alpha * UL(negatives); returns loss, ce and ul (the last two detached).

    Only the positions that predict reference or penalised tokens go through the LM head.
    """
    _, lm_head = decoder_and_head(model)
    hidden = last_hidden(model, batch)
    flat = hidden.reshape(-1, hidden.shape[-1])
    ce = F.cross_entropy(lm_head(flat[batch["ce_index"]]).float(), batch["ce_labels"])
    ul = unlikelihood_loss(lm_head(flat[batch["ul_index"]]), batch["ul_labels"])
    return {"loss": ce + alpha * ul, "ce": ce.detach(), "ul": ul.detach()}


def encode_ul(
    tok: PreTrainedTokenizerBase, raw: pd.DataFrame, pairs: pd.DataFrame, template: str, train_cfg: TrainConfig,
    novel_only: bool,
) -> list[UlExample]:
    """One example per raw post (same prompts and references as `sft`) with its negatives from ``pairs``."""
    negs = {pid: df["negative"].tolist() for pid, df in pairs.groupby("post_id", sort=False)}
    out = []
    for pid, post, reference in tqdm(zip(raw["id"], raw["post"], raw["summary"], strict=True), total=len(raw),
                                     desc="encode", leave=False):
        prompt, _ = prompt_ids(tok, template, post, train_cfg.max_prompt_tokens)
        ref = variant_ids(tok, Variant(reference.strip(), True), train_cfg.max_summary_tokens)[0]
        ex = UlExample(prompt, ref)
        for text in negs.get(pid, []):
            ids = variant_ids(tok, Variant(text.strip(), False), train_cfg.max_summary_tokens)[0]
            ex.negatives.append(ids)
            ex.penalised.append(penalised_tokens(ids, ref, tok.eos_token_id, novel_only))
        out.append(ex)
    return out


class UnlikelihoodTrainer(AlignTrainer):
    """The shared trainer with the CE + alpha * unlikelihood objective; logs ce and ul."""

    def __init__(self, *args, alpha: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpha = alpha

    def objective(self, model, inputs) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        out = ul_objective(model, inputs, self.alpha)
        return out, {"ce": out["ce"], "ul": out["ul"]}


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, cfg: UnlikelihoodConfig) -> Job:
    """Every train post with its reference and a seeded sample of its negatives, packed behind one prompt."""
    pairs, counts = negatives_by_post(inputs.raw, inputs.groups, cfg.negative_kinds, cfg.max_negatives_per_post,
                                      inputs.seed)
    examples = encode_ul(tok, inputs.raw, pairs, inputs.model.prompt_template, inputs.train, cfg.novel_tokens_only)
    counts |= {"posts_trained": len(examples),
               "penalised_tokens": sum(sum(m) for ex in examples for m in ex.penalised)}
    return Job(examples, counts, partial(collate_ul, pad_id=tok.pad_token_id), trainer_cls=UnlikelihoodTrainer,
               trainer_kwargs={"alpha": cfg.alpha}, logged=("ce", "ul"), pieces=ul_pieces)

"""CDA: counterfactual data augmentation (Zhao et al. 2018; Webster et al. 2020), then SFT.

Every training example that mentions a gender, race or religion attribute word gets a
counterfactual twin with the words swapped two-sidedly (he <-> she, jewish -> christian ->
muslim -> jewish), in the post and the summary alike; the model is then fine-tuned on the
originals plus the twins with the same trainer and budget as `sft`. Each twin follows its
original, and CDA trains on as many rows as `sft` (the whole train split): the first posts with
their twins, at exactly the optimizer steps of `sft`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from transformers import PreTrainedTokenizerBase

from aligntax.baselines.attributes import AXES, load_word_lists, swap
from aligntax.config import check
from aligntax.train.core import Job, TrainInputs
from aligntax.train.sft import sft_job


@dataclass
class CdaConfig:
    axes: list[str] = field(default_factory=lambda: list(AXES))
    """Attribute axes whose words are swapped (gender, race, religion)."""
    swap_post: bool = True
    """Swap the words in the post too, not only in the summary (keeps the pair consistent)."""

    def __post_init__(self) -> None:
        check(len(self.axes) > 0 and set(self.axes) <= set(AXES), "cda.axes", f"a non-empty subset of {list(AXES)}")
        check(len(set(self.axes)) == len(self.axes), "cda.axes", "axes without repeats")


CONFIG = CdaConfig
NEEDS_GROUPS = False


def augment(examples: pd.DataFrame, cfg: CdaConfig) -> tuple[pd.DataFrame, dict]:
    """Originals plus one counterfactual per example that contains an attribute word.

    ``examples`` needs columns post and summary; the result keeps all columns and adds
    ``counterfactual`` (bool); each twin comes right after its original. Returns (augmented
    frame, row accounting).
    """
    for col in ("post", "summary"):
        if col not in examples.columns:
            raise ValueError(f"cda: examples need a '{col}' column (got {', '.join(map(str, examples.columns))})")
    lists = load_word_lists(cfg.axes)
    rows, swaps, twins = [], 0, 0
    for values in examples.itertuples(index=False):
        row = dict(zip(examples.columns, values, strict=True))
        rows.append({**row, "counterfactual": False})
        summary, n_sum = swap(row["summary"], lists)
        post, n_post = swap(row["post"], lists) if cfg.swap_post else (row["post"], 0)
        if n_sum + n_post == 0:
            continue
        swaps += n_sum + n_post
        twins += 1
        rows.append({**row, "post": post, "summary": summary, "counterfactual": True})
    out = pd.DataFrame(rows, columns=[*examples.columns, "counterfactual"])
    stats = {
        "rows_read": len(examples),
        "rows_with_attribute_words": twins,
        "rows_without_attribute_words": len(examples) - twins,
        "words_swapped": swaps,
        "rows_out": len(out),
    }
    return out, stats


def prepare(inputs: TrainInputs, tok: PreTrainedTokenizerBase, cfg: CdaConfig) -> Job:
    """Augment the train posts, then `sft` on as many rows as `sft` trains on (same steps)."""
    limit = len(inputs.raw)  # the rows `sft` trains on
    augmented, stats = augment(inputs.raw[["post", "summary"]], cfg)
    trained = augmented.iloc[:limit]
    stats |= {"rows_trained": len(trained), "counterfactual_rows_trained": int(trained["counterfactual"].sum())}
    job = sft_job(tok, trained[["post", "summary"]], inputs)
    job.metrics["cda"] = stats
    return job

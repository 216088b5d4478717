"""The download stage: TL;DR posts from the committed sample or a hub dataset, cleaned and split.

Token budgets (paper: post 216, summary 84) are counted in Moses word tokens (sacremoses), so
the raw data does not depend on which model is trained later. Posts are cut at the last
sentence boundary inside the budget.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
from sacremoses import MosesTokenizer

from aligntax.config import check
from aligntax.io import read_jsonl
from aligntax.text import sentence_spans

log = logging.getLogger(__name__)

SAMPLE = "sample"
COLUMNS = ["id", "post", "summary", "subreddit", "title"]


@dataclass
class DataConfig:
    source: str = SAMPLE
    """`sample` (the committed Reddit TIFU sample) or `hf:<dataset id or local folder>`."""
    hf_config: str | None = None
    """Dataset configuration name for `hf:` sources (None for the default one)."""
    hf_train_split: str = "train"
    """Split of an `hf:` source that the train posts come from."""
    hf_eval_split: str | None = None
    """Split for eval posts; None carves the eval posts out of the train split by seed."""
    n_train: int = 128
    """Train posts kept after cleaning (0 keeps all)."""
    n_eval: int = 100
    """Eval posts kept after cleaning (0 keeps all)."""
    max_post_tokens: int = 216
    """Post budget in Moses tokens; longer posts are cut at a sentence boundary."""
    max_summary_tokens: int = 84
    """Summary budget in Moses tokens; longer summaries are cut at a sentence boundary."""
    min_train: int = 8
    """Fewest usable train posts; fewer is an error naming the counts."""
    min_eval: int = 8
    """Fewest usable eval posts; fewer is an error naming the counts."""

    def __post_init__(self) -> None:
        check(self.source == SAMPLE or (self.source.startswith("hf:") and len(self.source) > 3),
              "data.source", "'sample' | 'hf:<dataset id>'")
        check(self.n_train >= 0, "data.n_train", "an integer >= 0 (0 keeps all)")
        check(self.n_eval >= 0, "data.n_eval", "an integer >= 0 (0 keeps all)")
        check(self.max_post_tokens >= 8, "data.max_post_tokens", "an integer >= 8")
        check(self.max_summary_tokens >= 1, "data.max_summary_tokens", "an integer >= 1")
        check(self.min_train >= 1, "data.min_train", "an integer >= 1")
        check(self.min_eval >= 1, "data.min_eval", "an integer >= 1")


class DownloadError(RuntimeError):
    """The configured source could not be read."""


# --- pure text functions -------------------------------------------------------------------

@lru_cache(maxsize=1)
def _moses() -> MosesTokenizer:
    return MosesTokenizer(lang="en")


def count_tokens(text: str) -> int:
    """Number of Moses word tokens in ``text``."""
    return len(_moses().tokenize(text, escape=False))


def truncate_at_sentence(text: str, budget: int) -> tuple[str, bool]:
    """Longest prefix of whole sentences within ``budget`` tokens; (text, was_truncated).

    If even the first sentence is over budget it is cut at the last word that fits.
    """
    if count_tokens(text) <= budget:
        return text, False
    kept_end, used = 0, 0
    for start, end in sentence_spans(text):
        n = count_tokens(text[start:end])
        if used + n > budget:
            break
        kept_end, used = end, used + n
    if kept_end == 0:
        words, used = [], 0
        for word in text.split():
            used += count_tokens(word)
            if used > budget:
                break
            words.append(word)
        return " ".join(words), True
    return text[:kept_end], True


# A Moses token is a word or a punctuation mark; a "word" longer than this many characters per
# budgeted token (a pasted blob, a 1 MB string without spaces) is cut by characters as well.
MAX_CHARS_PER_TOKEN = 16


def cut_chars(text: str, budget: int) -> tuple[str, bool]:
    """``text`` cut to ``budget * MAX_CHARS_PER_TOKEN`` characters; (text, was_cut)."""
    limit = budget * MAX_CHARS_PER_TOKEN
    return (text, False) if len(text) <= limit else (text[:limit], True)


def normalize_key(text: str) -> str:
    """Whitespace-collapsed lower-case text, the key posts are de-duplicated on."""
    return " ".join(text.lower().split())


_PROMPT_FIELD = re.compile(r"^(SUBREDDIT|TITLE|POST):\s*", re.MULTILINE)


def parse_tldr_prompt(prompt: str) -> dict[str, str | None]:
    """Split an OpenAI-style TL;DR prompt ("SUBREDDIT: r/x\\nTITLE: ...\\nPOST: ...\\nTL;DR:")."""
    parts: dict[str, str | None] = {"subreddit": None, "title": None, "post": prompt}
    marks = list(_PROMPT_FIELD.finditer(prompt))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(prompt)
        parts[m.group(1).lower()] = prompt[m.end():end].strip()
    post = parts["post"] or ""
    parts["post"] = re.sub(r"\s*TL;DR:\s*$", "", post).strip()
    if parts["subreddit"]:
        parts["subreddit"] = parts["subreddit"].removeprefix("r/")
    return parts


def map_fields(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Map a known TL;DR layout onto id, post, summary, subreddit, title."""
    cols = set(df.columns)
    if {"content", "summary"} <= cols:
        out = pd.DataFrame({"post": df["content"], "summary": df["summary"]})
    elif {"post", "summary"} <= cols:
        out = pd.DataFrame({"post": df["post"], "summary": df["summary"]})
    elif "prompt" in cols and ({"completion"} & cols or {"label"} & cols):
        target = "completion" if "completion" in cols else "label"
        parsed = pd.DataFrame([parse_tldr_prompt(p) if isinstance(p, str) else {"post": p} for p in df["prompt"]])
        out = pd.DataFrame({"post": parsed["post"].to_numpy(), "summary": df[target].to_numpy()})
        for name in ("subreddit", "title"):
            if name in parsed and name not in cols:
                out[name] = parsed[name].to_numpy()
    else:
        raise DownloadError(
            f"data.source='{source}': unknown column layout {sorted(cols)}; expected one of "
            "content/summary (webis/tldr-17, dim/tldr_17_50k), post/summary, "
            "prompt/completion (trl-lib/tldr) or prompt/label (CarperAI/openai_summarize_tldr)"
        )
    for name in ("subreddit", "title"):
        if name not in out:
            out[name] = df[name].to_numpy() if name in cols else None
    if "id" in cols:  # kept as given; clean() drops empty and repeated ids
        ids = [None if pd.isna(i) else str(i).strip() for i in df["id"]]
    else:
        ids = [f"{source}-{i}" for i in range(len(df))]
    out.insert(0, "id", ids)
    if "split" in cols:
        out["split"] = df["split"].to_numpy()
    return out.reset_index(drop=True)


def clean(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Strip, drop bad rows and de-duplicate posts and ids. Returns (rows, dropped per reason).

    Ids must be unique and non-empty: a later stage joins augmentation groups to posts by id, so
    a repeated id would train one post on another's variants. Rows are cleaned before the
    train/eval split, so unique ids here are also disjoint across splits.
    """
    reasons = ("empty_id", "duplicate_id", "non_text", "empty_post", "empty_summary", "summary_without_words",
               "summary_is_post", "duplicate_post")
    dropped = dict.fromkeys(reasons, 0)
    keep, seen, seen_ids = [], set(), set()
    for row in df.to_dict("records"):
        post, summary, post_id = row["post"], row["summary"], row["id"]
        if not isinstance(post_id, str) or not post_id:
            dropped["empty_id"] += 1
            continue
        if post_id in seen_ids:
            dropped["duplicate_id"] += 1
            continue
        seen_ids.add(post_id)
        if not isinstance(post, str) or not isinstance(summary, str):
            dropped["non_text"] += 1
            continue
        post, summary = post.strip(), summary.strip()
        if not post:
            dropped["empty_post"] += 1
            continue
        if not summary:
            dropped["empty_summary"] += 1
            continue
        if not re.search(r"\w", summary):
            dropped["summary_without_words"] += 1
            continue
        key = normalize_key(post)
        if key == normalize_key(summary):
            dropped["summary_is_post"] += 1
            continue
        if key in seen:
            dropped["duplicate_post"] += 1
            continue
        seen.add(key)
        row.update(post=post, summary=summary)
        for name in ("subreddit", "title"):
            if not isinstance(row.get(name), str):
                row[name] = None
        keep.append(row)
    return pd.DataFrame(keep, columns=list(df.columns)), dropped


def truncate(df: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Cut posts and summaries to their token budgets; returns (rows, truncated counts)."""
    df = df.copy()
    cut = {}
    for column, budget in (("post", cfg.max_post_tokens), ("summary", cfg.max_summary_tokens)):
        pairs = [truncate_at_sentence(text, budget) for text in df[column]]
        chars = [cut_chars(text, budget) for text, _ in pairs]
        df[column] = [text for text, _ in chars]
        cut[column] = sum(was_cut for _, was_cut in pairs)
        cut[f"{column}_chars"] = sum(was_cut for _, was_cut in chars)
    return df, cut


def split(df: pd.DataFrame, cfg: DataConfig, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/eval split. A `split` column (train vs anything else) is honoured if present."""
    if "split" in df.columns and df["split"].nunique() > 1:
        train_pool = df[df["split"] == "train"]
        eval_pool = df[df["split"] != "train"]
    else:
        shuffled = df.sample(frac=1.0, random_state=seed)
        n_eval = cfg.n_eval or max(1, len(df) // 10)
        eval_pool, train_pool = shuffled.iloc[:n_eval], shuffled.iloc[n_eval:]
    train = train_pool.sample(frac=1.0, random_state=seed)
    evals = eval_pool.sample(frac=1.0, random_state=seed + 1)
    if cfg.n_train:
        train = train.iloc[: cfg.n_train]
    if cfg.n_eval:
        evals = evals.iloc[: cfg.n_eval]
    return train[COLUMNS].reset_index(drop=True), evals[COLUMNS].reset_index(drop=True)


# --- sources -------------------------------------------------------------------------------


def load_sample(path: str | Path) -> pd.DataFrame:
    """The committed Reddit TIFU sample (JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path}: sample file not found; restore it with `git checkout -- {path}`")
    return read_jsonl(path)


def load_hub(cfg: DataConfig) -> pd.DataFrame:
    """A hub dataset (or a local dataset folder) through `datasets`, train + eval splits."""
    import datasets

    name = cfg.source.removeprefix("hf:")
    splits = [cfg.hf_train_split] + ([cfg.hf_eval_split] if cfg.hf_eval_split else [])
    frames = []
    try:
        if (Path(name) / "dataset_dict.json").is_file() or (Path(name) / "state.json").is_file():
            loaded = datasets.load_from_disk(name)
            for s in splits:
                ds = loaded[s] if isinstance(loaded, datasets.DatasetDict) else loaded
                frames.append(ds.to_pandas().assign(split="train" if s == cfg.hf_train_split else "eval"))
        else:
            for s in splits:
                ds = datasets.load_dataset(name, cfg.hf_config, split=s)
                frames.append(ds.to_pandas().assign(split="train" if s == cfg.hf_train_split else "eval"))
    except (KeyError, ValueError) as err:
        raise DownloadError(
            f"data.source='{cfg.source}': split not found ({err}); check data.hf_train_split / data.hf_eval_split"
        ) from err
    except Exception as err:  # datasets raises many types for "no network" / "not found"
        raise DownloadError(
            f"data.source='{cfg.source}': could not load the dataset ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). It needs network access to the "
            "Hugging Face Hub or a local copy; set data.source: sample in params.yaml to use the "
            "committed offline sample."
        ) from err
    df = pd.concat(frames, ignore_index=True)
    if not cfg.hf_eval_split:
        df = df.drop(columns="split")
    return df


def download(cfg: DataConfig, seed: int, sample_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read the source, clean and split it; returns (train, eval, metrics)."""
    if cfg.source == SAMPLE:
        raw = load_sample(sample_path)
        source_name = "sample"
    else:
        raw = load_hub(cfg)
        source_name = cfg.source
    mapped = map_fields(raw, source_name)
    rows, dropped = clean(mapped)
    train, evals = split(rows, cfg, seed)
    train, cut_train = truncate(train, cfg)
    evals, cut_eval = truncate(evals, cfg)
    truncated = {k: cut_train[k] + cut_eval[k] for k in cut_train}
    if len(train) < cfg.min_train or len(evals) < cfg.min_eval:
        raise DownloadError(
            f"data.source='{source_name}': only {len(train)} train and {len(evals)} eval posts are usable "
            f"(of {len(raw)} read; dropped: {', '.join(f'{k} {v}' for k, v in dropped.items() if v) or 'none'}); "
            f"need at least data.min_train={cfg.min_train} and data.min_eval={cfg.min_eval}. Use a larger source, "
            "or lower data.n_eval / the minimums in params.yaml"
        )
    metrics = {
        "source": source_name,
        "read": len(raw),
        "kept": {"train": len(train), "eval": len(evals)},
        "dropped": dropped,
        "unused_after_sampling": len(rows) - len(train) - len(evals),
        "truncated": truncated,
    }
    log.info("read %d rows, kept %d train / %d eval", len(raw), len(train), len(evals))
    return train, evals, metrics

"""The parquet schema of every artifact the pipeline writes, and ``validate``.

Every stage validates its inputs against these before doing any work, so a wrong file fails
at once with one message naming the file, the column and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

ENTITY_SPAN = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("label", pa.string())])


class SchemaError(ValueError):
    """An artifact does not have the columns or types the pipeline expects."""


@dataclass(frozen=True)
class ArtifactSchema:
    name: str
    """Short name used in messages."""
    producer: str
    """The DVC stage that writes this artifact (named in the fix)."""
    schema: pa.Schema
    """Column names and arrow types, in the order they are written."""
    required_text: tuple[str, ...] = ()
    """String columns whose values must be non-empty text (no null, no blank)."""
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Columns restricted to a fixed set of values."""
    unique: tuple[str, ...] = ()
    """Columns whose values must not repeat (ids)."""
    key: tuple[str, ...] = ()
    """Columns that identify a row together (e.g. post_id and text): no two rows may share all of them."""
    min_rows: int = 0
    """Fewest rows a valid file has (an empty input is an error, not an empty run)."""

    @property
    def columns(self) -> list[str]:
        return self.schema.names


RAW = ArtifactSchema(
    name="raw posts",
    producer="download",
    schema=pa.schema(
        [
            ("id", pa.string()),
            ("post", pa.string()),
            ("summary", pa.string()),
            ("subreddit", pa.string()),
            ("title", pa.string()),
        ]
    ),
    required_text=("id", "post", "summary"),
    unique=("id",),
    min_rows=1,
)

CASED = ArtifactSchema(
    name="cased posts",
    producer="truecase",
    schema=RAW.schema,
    required_text=("id",),
    unique=("id",),
)
"""data/cased/{train,eval}.parquet: the raw split with post and summary cased (same ids, same order)."""

ROLES = ("positive", "negative")
TOXIC_KINDS = ("toxic_lm", "toxic_lexicon")
"""Negatives written by toxify."""
ENTITY_KINDS = ("swap_ent", "mask_regen", "sys_lowcon")
"""Negatives written by entity-perturb."""
NEGATIVE_KINDS = TOXIC_KINDS + ENTITY_KINDS
"""Every kind of negative of the groups artifact, in the order a post's negatives are written."""
KINDS = ("reference", "backtranslation", "lm_paraphrase", *NEGATIVE_KINDS)

PARAPHRASES = ArtifactSchema(
    name="back-translated paraphrases",
    producer="backtranslate",
    schema=pa.schema(
        [
            ("post_id", pa.string()),
            ("kind", pa.string()),
            ("pivot", pa.string()),
            ("text", pa.string()),
            ("meaning", pa.float64()),
        ]
    ),
    required_text=("post_id", "text"),
    allowed={"kind": ("reference", "backtranslation", "lm_paraphrase")},
    key=("post_id", "text"),  # backtranslate drops a paraphrase identical to the reference or another one
)

TOXIC = ArtifactSchema(
    name="toxic rewrites",
    producer="toxify",
    schema=pa.schema(
        [
            ("post_id", pa.string()),
            ("kind", pa.string()),
            ("text", pa.string()),
            ("toxicity", pa.float64()),
        ]
    ),
    required_text=("post_id", "text"),
    allowed={"kind": TOXIC_KINDS},
    key=("post_id", "text"),  # toxify drops a repeated rewrite of a post
)

GROUPS = ArtifactSchema(
    name="contrastive groups",
    producer="entity-perturb",
    schema=pa.schema(
        [
            ("post_id", pa.string()),
            ("role", pa.string()),
            ("kind", pa.string()),
            ("text", pa.string()),
            ("entity_spans", pa.list_(ENTITY_SPAN)),
            ("toxicity", pa.float64()),
        ]
    ),
    required_text=("post_id", "text"),
    allowed={"role": ROLES, "kind": KINDS},
)

GENERATIONS = ArtifactSchema(
    name="generations",
    producer="evaluate",
    schema=pa.schema(
        [
            ("post_id", pa.string()),
            ("method", pa.string()),
            ("post", pa.string()),
            ("reference", pa.string()),
            ("generation", pa.string()),
        ]
    ),
    required_text=("post_id", "method", "post"),
    unique=("post_id",),
)

SCORES = ArtifactSchema(
    name="scores",
    producer="evaluate",
    schema=pa.schema(
        [
            ("post_id", pa.string()),
            ("method", pa.string()),
            ("toxicity", pa.float64()),
            ("faithfulness", pa.float64()),
            ("rouge1", pa.float64()),
            ("rouge2", pa.float64()),
            ("rougeL", pa.float64()),
            ("n_words", pa.int64()),
            ("n_tokens", pa.int64()),
            ("finished", pa.bool_()),
            ("similarity", pa.float64()),
            ("entities", pa.int64()),
            ("hallucinated_entities", pa.int64()),
            ("empty", pa.bool_()),
            ("abstention", pa.bool_()),
            ("repetitive", pa.bool_()),
            ("incomplete", pa.bool_()),
            ("excessive_punctuation", pa.bool_()),
            ("non_sequitur", pa.bool_()),
        ]
    ),
    required_text=("post_id", "method"),
    unique=("post_id",),
    min_rows=1,
)


def validate(df: pd.DataFrame, spec: ArtifactSchema, path: str | Path) -> None:
    """Raise SchemaError naming ``path``, the first bad column and the fix, or return None.

    Extra columns are allowed (a hub dataset may carry more); the declared ones must exist with
    a compatible type, and ``required_text`` columns must hold non-empty strings.
    """
    fix = f"re-create it with `dvc repro {spec.producer}`"
    if len(df) < spec.min_rows:
        raise SchemaError(f"{path}: the {spec.name} file has {len(df)} rows, at least {spec.min_rows} needed; {fix}")
    for name in spec.columns:
        if name not in df.columns:
            raise SchemaError(
                f"{path}: column '{name}' is missing from the {spec.name} file "
                f"(expected columns: {', '.join(spec.columns)}); {fix}"
            )
        expected = spec.schema.field(name).type
        if not _compatible(df[name], expected):
            raise SchemaError(
                f"{path}: column '{name}' has type {df[name].dtype}, expected {expected}; {fix}"
            )
    for name in spec.required_text:
        bad = ~df[name].map(lambda v: isinstance(v, str) and v.strip() != "")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise SchemaError(
                f"{path}: column '{name}' has {int(bad.sum())} empty or non-text value(s) "
                f"(first at row {row}); {fix}"
            )
    for name in spec.unique:
        repeated = df[name][df[name].duplicated()]
        if len(repeated):
            raise SchemaError(
                f"{path}: column '{name}' repeats {len(repeated)} value(s) (first {repeated.iloc[0]!r}); "
                f"values must be unique; {fix}"
            )
    if spec.key and len(df):
        repeated = df[df.duplicated(list(spec.key))]
        if len(repeated):
            first = ", ".join(f"{k}={repeated[k].iloc[0]!r}"[:80] for k in spec.key)
            raise SchemaError(f"{path}: {len(repeated)} row(s) repeat another row's {' + '.join(spec.key)} "
                              f"(first {first}); each must be unique; {fix}")
    for name, values in spec.allowed.items():
        bad = ~df[name].isin(values)
        if bad.any():
            value = df[name][bad].iloc[0]
            raise SchemaError(
                f"{path}: column '{name}' has value {value!r}; allowed: {', '.join(values)}; {fix}"
            )


def _compatible(series: pd.Series, expected: pa.DataType) -> bool:
    if len(series) == 0 or series.isna().all():
        return True
    if pa.types.is_string(expected) or pa.types.is_large_string(expected):
        return bool(series.dropna().map(lambda v: isinstance(v, str)).all())
    if pa.types.is_floating(expected) or pa.types.is_integer(expected):
        return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if pa.types.is_list(expected):
        return bool(series.dropna().map(lambda v: hasattr(v, "__len__") and not isinstance(v, str)).all())
    return True

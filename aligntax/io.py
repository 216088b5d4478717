"""Reading validated artifacts and writing outputs atomically (temp file, then rename)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aligntax.schema import ArtifactSchema, SchemaError, validate


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the body succeeds.

    If the body raises, the temporary file is removed and whatever ``path`` held before is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | Path, spec: ArtifactSchema) -> None:
    """Write ``df`` with exactly the columns and types of ``spec``, atomically."""
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{path}: refusing to write without column(s) {', '.join(missing)}")
    validate(df, spec, path)  # what a stage writes passes the schema its readers check
    table = pa.Table.from_pandas(df[spec.columns], schema=spec.schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | Path, spec: ArtifactSchema) -> pd.DataFrame:
    """Read and validate a parquet artifact; one clear error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: file not found; create it with `dvc repro {spec.producer}`")
    try:
        df = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as err:
        raise SchemaError(
            f"{path}: not a readable parquet file ({err}); re-create it with "
            f"`dvc repro {spec.producer}`"
        ) from err
    validate(df, spec, path)
    return df


def read_jsonl(path: str | Path) -> pd.DataFrame:
    """A JSON Lines file as a frame; a bad line is one error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}); "
                                 "fix or remove that line") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected one JSON object per line, got {type(row).__name__}")
            rows.append(row)
    return pd.DataFrame(rows)


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeds."""
    with atomic_path(path) as tmp:
        write(tmp)

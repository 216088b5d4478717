"""Reading validated artifacts and writing outputs atomically (temp file, then rename).

A write that fails (a full disk, a read-only folder) leaves no temporary file behind and the
previous output untouched, and raises one OSError naming the output (``write_error``).
"""

from __future__ import annotations

import errno
import hashlib
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

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)
REPORTED = (("No space left on device", errno.ENOSPC), ("StorageFull", errno.ENOSPC),
            ("Disk quota exceeded", errno.EDQUOT), ("File too large", errno.EFBIG), ("FileTooLarge", errno.EFBIG),
            ("file write failed", errno.EIO))
"""How libraries that raise no OSError (safetensors, torch's zip writer) report a failed write."""


def write_error(err: BaseException, path: str | Path, tmp: Path | None = None) -> OSError | None:
    """``err`` as an OSError naming ``path`` when it is a failed write of ``path`` (through ``tmp``): a full
    disk, no permission ...; None for any other error, and for one that already names another file."""
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        own = err.filename is None or str(err.filename) == str(path) or \
            (tmp is not None and str(err.filename).startswith(str(tmp)))
        return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) if own else None
    code = next((code for text, code in REPORTED if text in str(err)), None)
    return None if code is None else OSError(code, os.strerror(code), str(path))


def _mkdir(folder: Path, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise (write_error(err, path, folder) or err) from err


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the body succeeds.

    If the body raises, the temporary file is removed and whatever ``path`` held before is kept;
    a failed write is raised as an OSError naming ``path``.
    """
    path = Path(path)
    _mkdir(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise (write_error(err, path, path.parent) or err) from err
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as err:
        failed = write_error(err, path, tmp)
        if failed is None:
            raise
        raise failed from err
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path, staging: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (or inside ``staging``, on the same filesystem); it
    replaces ``path`` only if the body succeeds, and is removed otherwise (a failed write is raised
    as an OSError naming ``path``)."""
    path = Path(path)
    parent = Path(staging) if staging is not None else path.parent
    _mkdir(path.parent, path)
    _mkdir(parent, path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as err:
        raise (write_error(err, path, parent) or err) from err
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
    except Exception as err:
        failed = write_error(err, path, tmp)
        if failed is None:
            raise
        raise failed from err
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
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 text (byte {err.start + 1} of the line is "
                                 f"{raw[err.start:err.start + 1].hex()}); save the file as UTF-8 or fix that line") from None
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


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``hashlib.file_digest``, read in blocks)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()

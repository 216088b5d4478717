"""Resumable chunked processing with flat memory, split across processes.

A stage streams its input parquet in chunks of ``chunk_size`` posts. Each finished chunk is
written (atomically) to ``<work_dir>/<fingerprint>/chunk-NNNNN.parquet`` with its row accounting
beside it as JSON, written last, which also records the sha256 of the chunk's bytes; the
fingerprint hashes the stage, its params and its input files, so a change of any of them never
reuses stale chunks. A killed run re-run with the same inputs reuses the finished chunks whose
bytes still match their recorded hash; a chunk that does not (truncated, edited) is deleted and
redone, with one log line. When every chunk is done, they are concatenated (one row group each)
into the output and the work folder is removed.

Processes: under a multi-process launcher (``torchrun --nproc_per_node N -m stages.toxify``, or
``accelerate launch``; aligntax/distributed.py) process K of N does the chunks with
``index % N == K``; all wait for each other, then process 0 alone merges and writes the output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from aligntax import distributed
from aligntax.io import atomic_path, file_digest, write_json, write_parquet
from aligntax.schema import RAW, ArtifactSchema, SchemaError, validate

log = logging.getLogger(__name__)


CODE = Path(__file__).resolve().parents[1]
"""The aligntax package: its code is part of every fingerprint, so new code never reuses old chunks."""


def fingerprint(stage: str, config: Any, seed: int, inputs: Sequence[str | Path]) -> str:
    """Hash of the stage name, its config, the seed, the aligntax code and the bytes of its inputs.

    An input may be a file or a folder (model and scorer folders: every file in it counts); a
    missing input is an error, so a resume never matches by leaving something out.
    """
    h = hashlib.sha256(json.dumps([stage, repr(config), seed], sort_keys=True).encode())
    for f in sorted(CODE.rglob("*.py")):
        h.update(f.relative_to(CODE).as_posix().encode() + f.read_bytes())
    for path in inputs:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input not found; create it with `dvc repro`")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def check_columns(path: str | Path, spec: ArtifactSchema) -> int:
    """Check that ``path`` exists and has ``spec``'s columns with compatible types; return its row count."""
    path = Path(path)
    fix = f"re-create it with `dvc repro {spec.producer}`"
    if not path.is_file():
        raise SchemaError(f"{path}: file not found; create it with `dvc repro {spec.producer}`")
    try:
        meta = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise SchemaError(f"{path}: not a readable parquet file ({err}); {fix}") from err
    have = meta.schema_arrow
    for name in spec.columns:
        if name not in have.names:
            raise SchemaError(
                f"{path}: column '{name}' is missing from the {spec.name} file "
                f"(expected columns: {', '.join(spec.columns)}); {fix}"
            )
        want, got = spec.schema.field(name).type, have.field(name).type
        if not _same_kind(want, got):
            raise SchemaError(f"{path}: column '{name}' has type {got}, expected {want}; {fix}")
    return meta.metadata.num_rows


def _same_kind(want: pa.DataType, got: pa.DataType) -> bool:
    if pa.types.is_null(got):
        return True
    for kind in (pa.types.is_string, pa.types.is_floating, pa.types.is_list):
        if kind(want):
            return kind(got) or (kind is pa.types.is_string and pa.types.is_large_string(got))
    return True


def check_keys(path: str | Path, spec: ArtifactSchema) -> None:
    """The ids of ``spec`` (``unique`` columns, ``key``) repeat nowhere in the file, not only within a chunk;
    only those columns are read."""
    columns = sorted({*spec.unique, *spec.key})
    if columns:
        validate(pq.read_table(path, columns=columns).to_pandas(),
                 dataclasses.replace(spec, schema=pa.schema([spec.schema.field(c) for c in columns]),
                                     required_text=(), allowed={}, min_rows=0), path)


def iter_chunks(path: str | Path, spec: ArtifactSchema, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Stream ``path`` in validated pandas chunks of ``chunk_size`` rows (columns of ``spec`` only)."""
    check_columns(path, spec)
    check_keys(path, spec)
    reader = pq.ParquetFile(path)
    for batch in reader.iter_batches(batch_size=chunk_size, columns=spec.columns):
        df = batch.to_pandas()
        validate(df, spec, path)
        yield df


class AlignedReader:
    """Rows of an artifact written in the post order of the stage input, handed out chunk by chunk.

    ``take(ids)`` returns the leading rows whose ``post_id`` is in ``ids``; memory holds one batch.
    """

    def __init__(self, path: str | Path, spec: ArtifactSchema, batch_size: int = 4096):
        self.path = Path(path)
        self._batches = iter_chunks(path, spec, batch_size)
        self._buffer = pd.DataFrame(columns=spec.columns)

    def take(self, ids: Sequence[str]) -> pd.DataFrame:
        wanted, parts = set(ids), []
        while True:
            if self._buffer.empty:
                nxt = next(self._batches, None)
                if nxt is None:
                    break
                self._buffer = nxt.reset_index(drop=True)
            inside = self._buffer["post_id"].isin(wanted).to_numpy()
            stop = int(inside.argmin()) if not inside.all() else len(inside)
            parts.append(self._buffer.iloc[:stop])
            self._buffer = self._buffer.iloc[stop:].reset_index(drop=True)
            if not self._buffer.empty:
                break
        parts = [p for p in parts if not p.empty]
        return pd.concat(parts, ignore_index=True) if parts else self._buffer.iloc[:0]

    def finish(self) -> None:
        """Raise if rows are left over (post ids not in the input, or a different order)."""
        if not self._buffer.empty or next(self._batches, None) is not None:
            raise ValueError(
                f"{self.path}: has rows for post ids that are not in the stage input or not in its "
                "order; re-create it from the same data/raw/train.parquet (dvc repro)"
            )


def add_counts(total: dict, part: dict) -> dict:
    """Recursively add the numbers of ``part`` into ``total`` (nested row-accounting dicts)."""
    for key, value in part.items():
        if isinstance(value, dict):
            add_counts(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


Process = Callable[[pd.DataFrame, int], tuple[pd.DataFrame, dict]]


def run_chunked(
    chunks: Iterator[pd.DataFrame],
    n_rows: int,
    chunk_size: int,
    process: Process,
    spec: ArtifactSchema,
    work_dir: str | Path,
    out_path: str | Path,
    desc: str = "chunks",
    skip: Callable[[pd.DataFrame, int], None] | None = None,
    finish: Callable[[], None] | None = None,
) -> dict | None:
    """Run ``process(chunk, index) -> (rows, counts)`` over this process's unfinished chunks.

    ``skip(chunk, index)`` is called for chunks that are not processed now (finished or another
    process's), so aligned readers can advance; ``finish()`` runs after the last chunk. Once every
    process is done, the main process writes ``out_path`` and returns the summed counts; the
    other processes return None and write nothing more.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    n_chunks = max(1, -(-n_rows // chunk_size))
    paths = [work / f"chunk-{i:05d}.parquet" for i in range(n_chunks)]
    world, rank = distributed.world_size(), distributed.rank()
    # each process checks (and drops) only its own chunks, so no two delete the same file
    reused = {i for i, p in enumerate(paths) if i % world == rank and _reusable(p, desc)}
    if reused:
        log.info("%s: resuming: reusing %d of %d finished chunks in %s", desc, len(reused), n_chunks, work)
    bar = tqdm(total=n_rows, desc=desc, unit="post")
    for index, chunk in enumerate(chunks):
        done = paths[index]
        if index % world != rank or index in reused:
            if skip:
                skip(chunk, index)
        else:
            rows, counts = process(chunk, index)
            write_parquet(rows, done, spec)
            write_json({"sha256": file_digest(done), "counts": counts}, done.with_suffix(".json"))
        bar.update(len(chunk))
    bar.close()
    if finish:
        finish()
    distributed.barrier()
    if not distributed.is_main():
        return None
    missing = [p for p in paths if _record(p) is None]
    if missing:
        raise RuntimeError(f"{missing[0]}: chunk missing after every process finished ({len(missing)} of {n_chunks}); "
                           f"the processes must share {work.parent} (one filesystem); re-run the stage to redo them")
    counts: dict = {}
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, spec.schema) as writer:
        for p in paths:
            record = _record(p)
            if record is None or file_digest(p) != record["sha256"]:
                raise RuntimeError(f"{p}: chunk changed on disk while the stage ran (its bytes no longer match the "
                                   "hash recorded when it was written); re-run the stage to redo it")
            writer.write_table(pq.read_table(p, schema=spec.schema))
            add_counts(counts, record["counts"])
    shutil.rmtree(work, ignore_errors=True)
    return counts


def _record(chunk: Path) -> dict | None:
    """The chunk's record (written last, atomically: its rows' sha256 and their counts), None when there is none."""
    try:
        record = json.loads(chunk.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    valid = isinstance(record, dict) and isinstance(record.get("sha256"), str) and isinstance(record.get("counts"), dict)
    return record if valid and chunk.is_file() else None


def _reusable(chunk: Path, desc: str) -> bool:
    """Whether a chunk of an earlier run can be reused: its record exists and its bytes match the recorded hash.

    A chunk that does not (truncated or edited after it was written, or its record lost) is deleted
    with one log line, so it is redone.
    """
    if not chunk.exists() and not chunk.with_suffix(".json").exists():
        return False
    record = _record(chunk)
    if record is not None and file_digest(chunk) == record["sha256"]:
        return True
    why = "has no readable record" if record is None else "does not match the hash recorded when it was written"
    log.warning("%s: %s %s (truncated or changed since); deleting it, it will be redone", desc, chunk.name, why)
    chunk.unlink(missing_ok=True)
    chunk.with_suffix(".json").unlink(missing_ok=True)
    return False


RAW_INPUT = dataclasses.replace(RAW, required_text=("id",))
"""data/raw/train.parquet as the augment stages read it: empty posts/summaries are counted, not fatal."""


def run_stage(
    stage: str,
    configs: Sequence[Any],
    seed: int,
    train_path: str | Path,
    extra_inputs: Sequence[str | Path],
    chunk_size: int,
    process: Process,
    spec: ArtifactSchema,
    work_root: str | Path,
    out_path: str | Path,
    skip: Callable[[pd.DataFrame, int], None] | None = None,
    finish: Callable[[], None] | None = None,
) -> dict | None:
    """Stream ``train_path`` through ``process`` chunk by chunk (resumable, split across processes) into
    ``out_path``; the summed counts on the main process, None on the others."""
    n_rows = check_columns(train_path, RAW_INPUT)
    if n_rows == 0:
        raise ValueError(f"{train_path}: has no rows; re-create it with `dvc repro download`")
    root = Path(work_root) / stage
    work = root / fingerprint(stage, configs, seed, [train_path, *extra_inputs])
    stale = sorted(p.name for p in root.glob("*") if p.is_dir() and p != work) if root.is_dir() else []
    if stale:
        log.info("%s: not resuming the chunks in %s/{%s}: their stage, params, inputs (model or scorer "
                 "folders) or code differ; starting afresh", stage, root, ",".join(stale))
    counts = run_chunked(iter_chunks(train_path, RAW_INPUT, chunk_size), n_rows, chunk_size, process, spec,
                         work, out_path, desc=stage, skip=skip, finish=finish)
    if counts is not None:
        shutil.rmtree(root, ignore_errors=True)
    return counts

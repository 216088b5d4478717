"""A write the operating system refuses ends a stage in one line naming the file, with nothing half-written.

The stages run as their own processes under a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored):
every write past the limit fails in the kernel with EFBIG, whichever library writes (pyarrow,
safetensors, torch), as a full disk fails with ENOSPC. The corpus (tests/test_bad_files_corpus.py)
covers ENOSPC itself by making the writers fail; the CLI's message for each errno is checked here.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_files_corpus import STAGES, _md5s, workspace  # noqa: F401 - the corpus's workspaces

from aligntax import cli
from aligntax.io import atomic_dir, write_json, write_parquet

ROOT = Path(__file__).resolve().parents[1]


def _limited(limit: int):
    def start() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return start


def _run(ws: Path, stage: str, limit: int) -> subprocess.CompletedProcess:
    module, args, _ = STAGES[stage]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc cut short by the limit
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=_limited(limit))


@pytest.mark.parametrize("stage, limit, fragment", [
    ("download", 2_000, "data/raw/train.parquet: "),  # the first output outgrows the limit
    ("train", 20_000, "checkpoints/train_sft"),  # the first checkpoint outgrows it
])
def test_a_refused_write_is_one_line_and_leaves_the_outputs(workspace, tmp_path, stage, limit, fragment):  # noqa: F811
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    before = _md5s(ws)
    run = _run(ws, stage, limit)
    errors = re.findall(r"error: [^\r\n]*", run.stderr)  # tqdm may share its line
    assert run.returncode == 1 and len(errors) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert fragment in errors[0] and "(EFBIG)" in errors[0] and "ulimit -f" in errors[0], errors[0]
    assert _md5s(ws) == before  # previous outputs byte-identical, no temporary file left
    assert not [p for p in ws.rglob("*.tmp")]
    assert not list((ws / "checkpoints").rglob("checkpoint-*")) if (ws / "checkpoints").exists() else True


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOSPC, "out.json: No space left on device (ENOSPC); the disk is full"),
    (errno.EACCES, "out.json: Permission denied (EACCES); no permission"),
    (errno.EROFS, "out.json: Read-only file system (EROFS); the filesystem is read-only"),
    (errno.EDQUOT, "out.json: Disk quota exceeded (EDQUOT)"),
])
def test_the_cli_names_the_file_errno_and_fix(tmp_path, monkeypatch, capsys, code, fragment):
    def write_text(self, *args, **kwargs):
        raise OSError(code, os.strerror(code))  # a failing write() names no file

    monkeypatch.setattr(Path, "write_text", write_text)
    (tmp_path / "out.json").write_bytes(b"previous\n")
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda: write_json({"a": 1}, tmp_path / "out.json"))
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and fragment in err and err.count("\n") == 1, err
    assert (tmp_path / "out.json").read_bytes() == b"previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_library_error_reporting_a_full_disk_names_the_folder(tmp_path):
    """safetensors and torch report a failed write in their own exception types: named as an OSError."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.bin").write_bytes(b"old")
    with pytest.raises(OSError) as err, atomic_dir(tmp_path / "model") as tmp:
        (tmp / "w.safetensors").write_bytes(b"partial")
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                           'left on device" })')
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] and (tmp_path / "model" / "old.bin").exists()


def test_an_error_about_an_input_is_not_blamed_on_the_output(tmp_path):
    import pandas as pd

    from aligntax.schema import RAW

    with pytest.raises(FileNotFoundError, match="input.parquet"), atomic_dir(tmp_path / "out"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "input.parquet"))
    with pytest.raises(PermissionError) as err:
        with atomic_dir(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.parquet"))
    assert err.value.filename.endswith("input.parquet")  # names its own file, not the output
    frame = pd.DataFrame({c: ["x"] for c in RAW.columns})
    write_parquet(frame, tmp_path / "ok.parquet", RAW)  # and a good write still works
    assert (tmp_path / "ok.parquet").is_file()

"""Time a whole `dvc repro`: wall seconds per stage and in total, and each stage's own phases. Prints numbers.

    python -m bench.repro                 # fresh clone of HEAD in a temp folder: every stage runs
    python -m bench.repro --in-place -f   # this workspace, `dvc repro -f` (its artifacts are kept)
    python -m bench.repro --table         # no run: the phase table of this workspace's last run

The fresh clone is what a new user gets after `git clone` (empty DVC cache, no models/): it shares
this checkout's .venv through a symlink, empty frozen-state stores in the temp folder, and is deleted
afterwards unless --keep. A stage's wall time
runs from its "Running stage" line to the next stage's (the last one ends with dvc): start-up and
imports included. The phase table reads what each stage recorded in its metrics JSON,
``"seconds": {"total", <phase>...}`` (aligntax/timing.py), for every stage in dvc.lock. The 1-minute
load average is printed before and after, since other processes on a 2-core machine slow every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def run_timed(cmd: list[str], cwd: Path, log_path: Path, **extra_env: str) -> tuple[list[tuple[str, float]], float, int]:
    """Run ``cmd``, tee its output to ``log_path``; (stage, seconds) in order, total seconds, exit code."""
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONUNBUFFERED="1", **extra_env)
    starts: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    with open(log_path, "w") as log, subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            m = STAGE_LINE.match(line)
            if m:
                now = time.perf_counter() - t0
                starts.append((m.group(1), now))
                print(f"[{now / 60:5.1f} min] {m.group(1)}", flush=True)
        code = proc.wait()
    total = time.perf_counter() - t0
    ends = [s for _, s in starts[1:]] + [total]
    return [(name, end - start) for (name, start), end in zip(starts, ends, strict=True)], total, code


def stage_seconds(root: Path) -> list[tuple[str, dict[str, float]]]:
    """(stage, ``seconds`` of its metrics JSON) for each stage of ``root``/dvc.lock that records them.

    A stage with several metrics files (none today) shows each; an older file's plain number is its total.
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return []
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=root, capture_output=True,
                            text=True)
    current = set(listed.stdout.split()) if listed.returncode == 0 else None  # dvc.lock may keep removed stages
    rows = []
    for stage, body in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
        if current is not None and stage not in current:
            continue
        for out in body.get("outs", []):
            path = root / out["path"]
            if not (out["path"].startswith("metrics/") and path.suffix == ".json" and path.is_file()):
                continue
            data = json.loads(path.read_text())
            seconds = data.get("seconds") if isinstance(data, dict) else None
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                seconds = {"total": seconds}
            if isinstance(seconds, dict):
                rows.append((stage, seconds))
    return rows


def print_phases(rows: list[tuple[str, dict[str, float]]]) -> None:
    """The per-stage table of recorded seconds: total, then each phase."""
    print(f"\n{'stage (its metrics JSON)':<32}{'total s':>9}  phases (s)")
    for name, seconds in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total")
        print(f"{name:<32}{seconds.get('total', float('nan')):>9.1f}  {phases or '-'}")
    total = sum(s.get("total", 0.0) for _, s in rows)
    print(f"{'sum of stage totals':<32}{total:>9.1f}  = {total / 60:.1f} min, {len(rows)} stages")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in-place", action="store_true", help="run in this workspace instead of a fresh clone")
    p.add_argument("--keep", action="store_true", help="keep the fresh clone (its path is printed)")
    p.add_argument("--log", default=None, help="where dvc's output goes (default: a file in the temp folder)")
    p.add_argument("--table", action="store_true", help="run nothing: print this workspace's recorded phase table")
    args, dvc_args = p.parse_known_args()
    if args.table:
        print_phases(stage_seconds(ROOT))
        return

    stores: dict[str, str] = {}
    if args.in_place:
        workdir, tmp = ROOT, None
    else:
        tmp = Path(tempfile.mkdtemp(prefix="aligntax-repro-"))
        workdir = tmp / "aligntax"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(workdir)], check=True)
        (workdir / ".venv").symlink_to(ROOT / ".venv")
        head = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True).strip()
        print(f"fresh clone of {head} in {workdir}")
        # A new user's frozen-state stores are empty too (aligntax/train/frozen.py, aligntax/evaluate/bottom.py).
        stores = {"ALIGNTAX_FROZEN_CACHE": str(tmp / "frozen"), "ALIGNTAX_STATE_CACHE": str(tmp / "states")}
    log_path = Path(args.log or Path(tempfile.gettempdir()) / f"aligntax-repro-{time.strftime('%Y%m%d-%H%M%S')}.log")
    print(f"load average before: {os.getloadavg()[0]:.2f}; dvc output: {log_path}")
    try:
        stages, total, code = run_timed(["dvc", "repro", *dvc_args], workdir, log_path, **stores)
        phases = stage_seconds(workdir)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'stage':<32}{'seconds':>9}")
    for name, seconds in stages:
        print(f"{name:<32}{seconds:>9.1f}")
    print(f"{'total (dvc repro)':<32}{total:>9.1f}  = {total / 60:.1f} min, {len(stages)} stages")
    print_phases(phases)
    if code != 0:
        print(f"dvc repro failed with exit code {code}; see {log_path}", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()

"""The paper profile's whole pipeline in a temporary copy of the repository, on the hub stand-ins.

    python tests/paper/pipeline.py [WORKDIR]    # copy, apply the profiles, `dvc repro`; prints the time

The copy holds the working tree's files (tracked and untracked, not ignored), a fresh git
repository and its own DVC cache, so nothing of this checkout's data/, models/, .dvc/cache or
dvc.lock is read or written; its labelled samples (data/sample/, read by fit-scorers and
validate-scorers) are cut to a few rows per stratum. params.yaml there is params.yaml +
configs/profiles/paper.yaml + tests/paper/cpu.yaml.
Every stage runs with the hub offline (HF_HUB_OFFLINE=1) and HF_HOME pointing at the stand-ins,
and every Python process records the stand-in files it opens (tests/paper/trace/sitecustomize.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import standins  # noqa: E402 - this folder, also when run as a script

PROFILES = (ROOT / "configs" / "profiles" / "paper.yaml", HERE / "cpu.yaml")
LABELLED = {"toxicity_sample.jsonl": (["source", "toxic"], 12), "faithfulness_sample.jsonl": (["dataset", "label"], 12),
            "tldr_sample.jsonl": ([], 80)}
"""Labelled samples of the copy (fit-scorers, validate-scorers) cut to their first n rows per stratum."""
TRACE_DIR = HERE / "trace"
BIN = Path(sys.executable).parent


@dataclass
class Run:
    repo: Path
    """The copy the pipeline ran in."""
    hf_home: Path
    """The stand-ins' HF_HOME."""
    trace: Path
    """Lines "<script args>\\t<opened file>" of every stand-in file a stage opened."""
    returncode: int
    seconds: float
    log: str
    """dvc repro's stdout and stderr."""


def standins_home() -> Path:
    """The stand-ins, built once per version of standins.py (cached under .pytest_cache).

    Under a file lock: pytest-xdist workers that ask at the same time wait for one build (two builds
    racing on one folder deleted each other's stand-ins while a pipeline read them)."""
    key = hashlib.sha256((HERE / "standins.py").read_bytes()).hexdigest()[:12]
    home = ROOT / ".pytest_cache" / "aligntax" / f"standins-{key}"
    home.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home.with_name(home.name + ".lock"))):
        if not (home / "standins.json").is_file():
            tmp = home.with_name(f"{home.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run([sys.executable, str(HERE / "standins.py"), str(tmp)], check=True, capture_output=True)
            shutil.rmtree(home, ignore_errors=True)
            tmp.rename(home)
            # datasets and flair remember the folder they were built in only through these env vars: no paths to fix
    return home


def copy_repo(dest: Path) -> Path:
    """The working tree's files (tracked + untracked, minus git-ignored) copied to ``dest``, as a new git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / "dvc.lock").unlink(missing_ok=True)  # every entry of the copy's dvc.lock comes from its own run
    for name, (strata, n) in LABELLED.items():
        path = dest / "data" / "sample" / name
        rows = pd.read_json(path, lines=True, dtype=False)
        rows = rows.groupby(strata, sort=False).head(n) if strata else rows.head(n)
        rows.to_json(path, orient="records", lines=True, force_ascii=False)
    git = ["git", "-c", "user.name=paper-test", "-c", "user.email=paper-test@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "paper-profile test copy", "--no-verify"]):
        subprocess.run(git + cmd, cwd=dest, check=True, capture_output=True)
    return dest


def environment(hf_home: Path, trace: Path) -> dict[str, str]:
    """This Python's venv first on PATH (stage commands run `python`), the stand-ins, the trace hook."""
    return os.environ | standins.env(hf_home) | {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(TRACE_DIR),
        "ALIGNTAX_HUB_TRACE": str(trace),
        "ALIGNTAX_STAGE_TIMES": str(trace.with_name("stage-times.tsv")),
        "DVC_NO_ANALYTICS": "1",
        # Tiny models gain nothing from intra-op threads, and on a busy machine spinning threads made a
        # stage several times slower (flair NER: 0.06 s a post with 1 thread, 1.5 s with 2 under load 10).
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run(workdir: Path | None = None, timeout: float = 1800) -> Run:
    """Copy, apply the profiles, `dvc repro` every stage; the result (the copy stays for inspection)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="paper-run-"))
    repo = copy_repo(workdir / "repo")
    hf_home = standins_home()
    trace = workdir / "hub-trace.tsv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "apply_profile.py"), *map(str, PROFILES),
                    "--params", str(repo / "params.yaml")], check=True, capture_output=True)
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=environment(hf_home, trace),
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    result = Run(repo, hf_home, trace, done.returncode, seconds, done.stdout + done.stderr)
    (workdir / "repro.log").write_text(result.log)
    (workdir / "run.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                  for k, v in asdict(result).items() if k != "log"}, indent=2))
    return result


def rerun(base: Run, name: str, overrides: Path, stages: list[str], timeout: float = 900) -> Run:
    """A copy of ``base``'s finished repository (its outputs and DVC cache) with the profile ``overrides``
    applied on top, where `dvc repro --single-item` runs only ``stages`` (in that order)."""
    workdir = base.repo.parent / name
    shutil.rmtree(workdir, ignore_errors=True)
    repo = workdir / "repo"
    shutil.copytree(base.repo, repo, symlinks=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "apply_profile.py"), str(overrides),
                    "--params", str(repo / "params.yaml")], check=True, capture_output=True)
    trace = workdir / "hub-trace.tsv"
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "dvc"), "repro", "--single-item", *stages], cwd=repo,
                          env=environment(base.hf_home, trace), capture_output=True, text=True, timeout=timeout)
    result = Run(repo, base.hf_home, trace, done.returncode, time.perf_counter() - start, done.stdout + done.stderr)
    (workdir / "repro.log").write_text(result.log)
    return result


def load(workdir: Path) -> Run:
    """The run ``run`` left in ``workdir`` (to check a finished run again without re-running it)."""
    saved = json.loads((workdir / "run.json").read_text())
    paths = {k: Path(saved[k]) for k in ("repo", "hf_home", "trace")}
    return Run(**paths, returncode=saved["returncode"], seconds=saved["seconds"], log=(workdir / "repro.log").read_text())


if __name__ == "__main__":
    result = run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(result.log[-4000:])
    print(f"dvc repro: exit {result.returncode} in {result.seconds:.0f} s (load average {os.getloadavg()[0]:.2f}); "
          f"ran in {result.repo}, log {result.repo.parent / 'repro.log'}")
    sys.exit(result.returncode)

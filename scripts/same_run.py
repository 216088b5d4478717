"""Did two checkouts' pipeline runs produce the same artifacts? Prints the differences, exits 1 if any.

    python -m scripts.same_run /path/to/other/checkout            # against this checkout
    python -m scripts.same_run A B

Compares (1) every stage output's md5 recorded in the two dvc.lock files, (2) reports/comparison.md
line by line, (3) each metrics/**/*.json value by value, ignoring keys that are wall times
(any key under `seconds`, `*_seconds`, `*_per_s`, `runtime`) and the frozen-state stores' traffic
(what a store already held when the stage ran: `frozen_cache` / `shared_bottom` counters). For a
reproducibility check run `make repro` in a fresh clone (`python -m bench.repro --keep`) and point
this at it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "runtime", "_per_s", "samples_per_second", "steps_per_second", "flos")
STORE = ("frozen_cache.computed", "frozen_cache.from_disk", "frozen_cache.bad_entries", "shared_bottom.")
"""Keys (prefixes) that count a store's hits and misses: they depend on what earlier runs left in it."""


def ignored(key: str) -> bool:
    """A wall time (in any part of the dotted key) or a store counter."""
    return any(t in part for part in key.split(".") for t in TIMING) or key.startswith(STORE)


def lock_outs(root: Path) -> dict[str, str]:
    """Stage output path -> md5, from dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o.get("md5", "") for stage in lock["stages"].values() for o in stage.get("outs", [])}


def flat(obj: object, prefix: str = "") -> dict[str, object]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in flat(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): obj}


def metric_diffs(a: Path, b: Path) -> list[str]:
    out = []
    for path in sorted((a / "metrics").rglob("*.json")):
        rel = path.relative_to(a)
        other = b / rel
        if not other.is_file():
            out.append(f"{rel}: missing in {b}")
            continue
        fa, fb = flat(json.loads(path.read_text())), flat(json.loads(other.read_text()))
        for key in sorted(set(fa) | set(fb)):
            if ignored(key):
                continue
            if fa.get(key) != fb.get(key):
                out.append(f"{rel}: {key}: {fa.get(key)!r} vs {fb.get(key)!r}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="one checkout (compared with this one) or two")
    args = p.parse_args()
    a, b = (ROOT, Path(args.paths[0])) if len(args.paths) == 1 else map(Path, args.paths[:2])
    la, lb = lock_outs(a), lock_outs(b)
    same = [k for k in la if la[k] == lb.get(k)]
    differ = sorted(k for k in set(la) | set(lb) if la.get(k) != lb.get(k))
    print(f"dvc.lock outputs: {len(same)} identical, {len(differ)} differ")
    for k in differ:
        print(f"  differs: {k}")
    ra, rb = (a / "reports/comparison.md").read_text().splitlines(), (b / "reports/comparison.md").read_text().splitlines()
    report = [f"  line {i + 1}:\n    {x}\n    {y}" for i, (x, y) in enumerate(zip(ra, rb, strict=False)) if x != y]
    if len(ra) != len(rb):
        report.append(f"  {len(ra)} vs {len(rb)} lines")
    print(f"reports/comparison.md: {'identical' if not report else f'{len(report)} lines differ'}")
    print("\n".join(report[:40]))
    metrics = metric_diffs(a, b)
    print(f"metrics/**/*.json (wall times ignored): {len(metrics)} values differ")
    print("\n".join(f"  {m}" for m in metrics[:60]))
    sys.exit(1 if differ or report or metrics else 0)


if __name__ == "__main__":
    main()

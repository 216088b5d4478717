"""Disk use of a checkout after `dvc repro`: the workspace outputs and the DVC cache, each file once.

`dvc repro` copies new outputs into .dvc/cache (DVC 3.67 on ext4: workspace and cache hold a copy
each); `dvc checkout --relink` then makes them hard links (`cache.type`), and identical files (the
tokenizer in every model folder) one inode. A file is counted once per inode (st_dev, st_ino), at
the first place it is met: models/*, data/, metrics/, dvclive/, checkpoints/, reports/, then
.dvc/cache (which then only adds what the workspace does not hold).

    python -m bench.disk [--root .]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PARTS = ("models", "data", "metrics", "dvclive", "checkpoints", "reports", ".dvc/cache")


def walk(path: Path) -> list[os.stat_result]:
    """stat of every regular file under ``path`` (symlinks not followed)."""
    if path.is_file() and not path.is_symlink():
        return [path.stat()]
    stats = []
    for folder, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if not os.path.islink(os.path.join(folder, name)):
                stats.append(st)
    return stats


def measure(root: Path) -> list[tuple[str, int, int]]:
    """(place, bytes it adds, bytes its files take if counted on their own) per place, in order."""
    seen: set[tuple[int, int]] = set()
    places = [p for part in PARTS if (root / part).exists()
              for p in (sorted(d for d in (root / part).iterdir() if d.is_dir()) if part == "models" else [root / part])]
    rows = []
    for place in places:
        added = own = 0
        for st in walk(place):
            size = st.st_blocks * 512  # allocated: sparse and reflinked files count what they take
            own += size
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                added += size
        rows.append((place.relative_to(root).as_posix(), added, own))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="checkout to measure")
    args = parser.parse_args()
    rows = measure(args.root.resolve())
    print(f"{'place':<28} {'adds MB':>10} {'own MB':>10}")
    for place, added, own in rows:
        print(f"{place:<28} {added / 1e6:>10.1f} {own / 1e6:>10.1f}")
    print(f"{'total (each inode once)':<28} {sum(r[1] for r in rows) / 1e9:>9.2f} GB")


if __name__ == "__main__":
    main()

"""Time `python -m stages.<name> --help` for every stage script and list arguments without help.

    python tests/stage_help.py            # every stages/*.py
    python tests/stage_help.py --limit 2  # exit 1 if one takes longer or lacks help text
    python tests/stage_help.py download toxify  # only these

tests/test_cli.py runs it on the light stages.

A stage answers --help fast when it imports only aligntax.cli at the top and its heavy libraries
inside main() after parse_args(). An argument "without help" is one whose --help entry shows no
"(default: ...)": aligntax.cli.parser's formatter adds that to every argument that has a help text.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def options_without_help(text: str) -> list[str]:
    """Options of an argparse --help text whose entry has no '(default: ...)'."""
    blocks: list[list[str]] = []
    in_options = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_options = line.rstrip().endswith(":") and "usage" not in line  # "options:" and group titles
            continue
        if not in_options:
            continue
        if re.match(r"^  -", line):
            blocks.append([line])
        elif blocks and line.startswith("    "):
            blocks[-1].append(line)
    missing = []
    for block in blocks:
        name = block[0].split()[0].rstrip(",")
        if name not in ("-h", "--help") and "(default:" not in " ".join(block):
            missing.append(name)
    return missing


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="stage scripts to time (default: every stages/*.py)")
    p.add_argument("--limit", type=float, default=None, help="seconds; exit 1 if a stage is slower or lacks help")
    p.add_argument("--repeat", type=int, default=1, help="runs per stage; the fastest is reported (default: 1)")
    args = p.parse_args()
    stages = args.names or sorted(f.stem for f in (ROOT / "stages").glob("*.py") if f.stem != "__init__")
    failed = []
    print(f"{'stage':<22} {'--help s':>8}  arguments without help")
    for name in stages:
        best, out = float("inf"), ""
        for _ in range(args.repeat):
            start = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", f"stages.{name}", "--help"], cwd=ROOT, capture_output=True,
                                 text=True, timeout=300)
            best = min(best, time.perf_counter() - start)
            out = res.stdout if res.returncode == 0 else f"exit {res.returncode}: {res.stderr.strip()[-200:]}"
        missing = options_without_help(out) if not out.startswith("exit ") else [out]
        print(f"{name:<22} {best:>8.2f}  {', '.join(missing) or '-'}")
        if args.limit is not None and (best > args.limit or missing):
            failed.append(name)
    if failed:
        print(f"over {args.limit} s or lacking help: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

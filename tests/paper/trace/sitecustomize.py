"""Imported at start-up by every Python process of the paper-profile run (PYTHONPATH holds this
folder): an audit hook appends each file it opens under $HF_HOME to $ALIGNTAX_HUB_TRACE, as
"<script and its first two arguments>\t<path>" lines, so the test can tell which hub stand-ins the
stages loaded; at exit each process appends "<script args>\t<wall s>\t<cpu s>" to $ALIGNTAX_STAGE_TIMES."""

import atexit
import os
import sys
import time


def _who() -> str:
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:3]]) if sys.argv else "?"


_TIMES = os.environ.get("ALIGNTAX_STAGE_TIMES")
if _TIMES:
    _START = time.time()

    @atexit.register
    def _times() -> None:
        cpu = sum(os.times()[:2])
        with open(_TIMES, "a") as fh:
            fh.write(f"{_who()}\t{time.time() - _START:.1f}\t{cpu:.1f}\n")

_ROOT = os.environ.get("HF_HOME")
_TRACE = os.environ.get("ALIGNTAX_HUB_TRACE")
if _ROOT and _TRACE:
    _ROOT = os.path.join(os.path.realpath(_ROOT), "")
    _seen: set[str] = set()

    def _record(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.fsdecode(args[0])
        if path.startswith(_ROOT) and path not in _seen:
            _seen.add(path)
            with open(_TRACE, "a") as fh:
                fh.write(f"{_who()}\t{path}\n")

    sys.addaudithook(_record)

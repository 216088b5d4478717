"""Run one stage script in this process with test doubles, as a launcher's worker would.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/launch_stage.py stages.evaluate ARGS...
    python tests/launch_stage.py stages.evaluate ARGS...          (one process, for the reference)

Test doubles (the real scorers need fitted artifacts; the multi-process tests are about the split):
- the toxicity, faithfulness, NER and similarity scorers are constant fakes;
- ALIGNTAX_TEST_WRITES=<folder>: every file a process moves into place (aligntax.io writes
  atomically with os.replace) is listed in <folder>/writes-<rank>.txt;
- ALIGNTAX_TEST_FAIL=<rank>:<module>:<function>: that function raises in that process.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RANK = int(os.environ.get("RANK", "0"))


class Const:
    def __init__(self, value: float):
        self.value = value

    def score(self, *args):
        return np.full(len(args[-1]), self.value)


class NoEntities:
    def entities(self, texts):
        return [[] for _ in texts]


def fake_scorers(*_args, **_kwargs):
    from aligntax.evaluate.run import Scorers

    return Scorers(toxicity=Const(0.25), faithfulness=Const(0.5), ner=NoEntities(), similarity=Const(0.9))


def record_writes(folder: Path) -> None:
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        with open(folder / f"writes-{RANK}.txt", "a") as fh:
            fh.write(f"{Path(dst).resolve()}\n")

    os.replace = replace


def fail_in(spec: str) -> None:
    rank, module, name = spec.split(":")
    if int(rank) != RANK:
        return

    def boom(*_args, **_kwargs):
        raise RuntimeError(f"injected failure in process {RANK}")

    setattr(importlib.import_module(module), name, boom)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import aligntax.evaluate.run as run
    import aligntax.scoring as scoring

    run.load_scorers = fake_scorers
    scoring.load_toxicity_scorer = lambda *_a, **_k: Const(0.45)
    if os.environ.get("ALIGNTAX_TEST_WRITES"):
        record_writes(Path(os.environ["ALIGNTAX_TEST_WRITES"]))
    if os.environ.get("ALIGNTAX_TEST_FAIL"):
        fail_in(os.environ["ALIGNTAX_TEST_FAIL"])
    stage = sys.argv[1]
    sys.argv = [stage, *sys.argv[2:]]
    runpy.run_module(stage, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

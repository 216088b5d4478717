"""Wall-clock seconds of a stage and of its phases, for the stage's metrics JSON.

Every stage records ``"seconds": {"total": ..., "<phase>": ...}`` in its metrics JSON (rounded
to 0.1 s), so `bench/repro.py` and a reader of metrics/ see where the time of a run goes:

    timer = Timer()
    with timer.phase("load"):
        model = load_model(...)
    with timer.phase("generate"):
        ...
    metrics["seconds"] = timer.seconds()

A phase entered twice adds up; ``total`` runs from the Timer's creation to the call of ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timer:
    """Total and per-phase wall seconds (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.phases: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body as phase ``name`` (added to earlier time of the same phase)."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - begin

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` measured elsewhere (e.g. by a library) to phase ``name``."""
        self.phases[name] = self.phases.get(name, 0.0) + float(seconds)

    def seconds(self) -> dict[str, float]:
        """``{"total": ..., <phase>: ...}``, phases in the order first entered, rounded to 0.1 s."""
        return {"total": round(time.perf_counter() - self.start, 1),
                **{name: round(value, 1) for name, value in self.phases.items()}}

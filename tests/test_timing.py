"""The stage timer: phases add up, the total covers them, values are rounded seconds."""

import time

from aligntax.timing import Timer


def test_phases_add_up_and_the_total_covers_them():
    timer = Timer()
    with timer.phase("load"):
        time.sleep(0.06)
    with timer.phase("work"):
        time.sleep(0.03)
    with timer.phase("load"):
        time.sleep(0.06)
    timer.add("library", 2.04)
    out = timer.seconds()
    assert list(out) == ["total", "load", "work", "library"]
    assert out["load"] == 0.1 and out["work"] == 0.0 and out["library"] == 2.0
    assert 0.1 <= out["total"] < 1.0


def test_a_failing_phase_is_still_timed():
    timer = Timer()
    try:
        with timer.phase("boom"):
            time.sleep(0.06)
            raise RuntimeError("x")
    except RuntimeError:
        pass
    assert timer.seconds()["boom"] == 0.1

"""scripts/evidence_report.py: the seed-spread table is computed from the runs' own compare.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.evidence_report import run_facts, seed_spread


def _run(root: Path, name: str, scale: str, seed: int, d_tox: float, half: float) -> Path:
    run = root / name
    run.mkdir()
    (run / "train_contrastive.json").write_text(json.dumps({"scale": scale, "seed": seed}))
    entry = {"d_toxicity": d_tox, "d_toxicity_low": d_tox - half, "d_toxicity_high": d_tox + half}
    (run / "compare.json").write_text(json.dumps({"posts": 99, "contrastive": entry}))
    return run


def test_seed_spread_mean_sd_and_interval(tmp_path):
    runs = [_run(tmp_path, "a", "dynamic", 0, -0.05, 0.04), _run(tmp_path, "b", "dynamic", 1, -0.01, 0.06),
            _run(tmp_path, "c", "dynamic", 2, -0.03, 0.05), _run(tmp_path, "d", "none", 0, 0.2, 0.1)]
    lines = seed_spread(runs)
    assert len(lines) == 3  # header, separator, one measure of the one scale with >= 2 seeds
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == "dynamic" and cells[1] == "generated toxicity (non-empty)"
    assert cells[2] == "-0.0500 (seed 0), -0.0100 (seed 1), -0.0300 (seed 2)"
    assert float(cells[3]) == pytest.approx(-0.03)
    assert float(cells[4]) == pytest.approx(0.02)  # sample SD of -0.05, -0.01, -0.03
    assert cells[5] == "±0.0500"
    assert seed_spread(runs[3:]) == []  # one seed: no spread to report


@pytest.mark.parametrize("seconds", [{"total": 80.2, "load": 3.1, "train": 75.6}, 75.6])
def test_run_facts_read_the_training_loop_seconds(tmp_path, seconds):
    """The train metrics' `seconds` is {"total", <phases>} (`train`: the loop); older runs hold one number."""
    run = tmp_path / "r"
    run.mkdir()
    rows = {"posts": 128, "posts_contrastive": 77}
    (run / "train_contrastive.json").write_text(json.dumps(
        {"seconds": seconds, "steps": 32, "seed": 0, "scale": "none", "w_posts_mean": 1.0, "rows": rows}))
    assert "train@contrastive 76 s, 32 steps, seed 0, scale none, mean w 1.00, 77 of 128 posts" in run_facts(run)

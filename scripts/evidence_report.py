"""Assemble reports/evidence.md from saved evidence experiments (docs/evidence.md says how to run them).

    python scripts/evidence_report.py --run reports/evidence/ev-none --run reports/evidence/ev-dynamic \
        --commands docs/evidence-commands.sh --conclusion reports/evidence/conclusion.md

Each ``--run`` folder holds what one `dvc exp run` left in its workspace: comparison.md,
tradeoff.png, compare.json, params.yaml, train_contrastive.json and evaluate/*.json (copied there
by the commands file; an optional run.json gives date, commit and machine). The first run is
the main table; every run contributes one row per measure to the contrastive-vs-sft table.
The header gives the commands, the date, the machine, the commit and the params that differ
from the shipped params.yaml. Nothing here is tuned: the
numbers are copied from the runs' own outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MEASURES = (
    ("generated toxicity (non-empty)", "d_toxicity", ""),
    ("generated faithfulness", "d_faithfulness", ""),
    ("toxic-rewrite margin (nats/token)", "pref_toxic", "d_margin"),
    ("paraphrase-vs-negative margin (nats/token)", "pref_paraphrase", "d_margin"),
    ("entity-negative margin (nats)", "pref_entity", "d_margin"),
)


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    mem = next((int(line.split()[1]) // 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0) if Path("/proc/meminfo").is_file() else 0
    return (f"{cpu}, {os.cpu_count()} cores, {mem} GiB RAM, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {version('torch')}; "
            "(report written here; the runs' thread setting is on their lines)")


def changed_params(run: Path) -> list[str]:
    shipped = flat(yaml.safe_load((ROOT / "params.yaml").read_text()))
    used = flat(yaml.safe_load((run / "params.yaml").read_text()))
    changed = [f"`{k}`: {shipped.get(k)!r} → {v!r}" for k, v in sorted(used.items()) if shipped.get(k) != v]
    removed = sorted(k for k in shipped if k not in used)
    return changed + ([f"removed: {', '.join(f'`{k}`' for k in removed)}"] if removed else [])


def _measure(entry: dict, key: str, sub: str) -> tuple[float, float, float, float] | None:
    """(Δ, CI low, CI high, MDE) of one measure of a compare.json entry, None when absent."""
    d, name = (entry.get(key, {}), sub) if sub else (entry, key)
    if d.get(name) is None:
        return None
    return d[name], d[f"{name}_low"], d[f"{name}_high"], d.get(f"{name}_mde")


def delta_cell(entry: dict, key: str, sub: str) -> str:
    m = _measure(entry, key, sub)
    if m is None:
        return "– | –"
    value, low, high, mde = m
    return f"{value:+.4f} [{low:+.4f}, {high:+.4f}] | ±{mde:.4f}"


def contrastive_table(runs: list[Path]) -> list[str]:
    lines = ["| run | measure | Δ contrastive − sft [95% CI] (metrics/compare.json) | MDE | n |", "|---|---|---|---|---|"]
    for run in runs:
        compare = json.loads((run / "compare.json").read_text())
        entry = compare["contrastive"]
        for label, key, sub in MEASURES:
            n = compare["posts"] if not sub else f"{int(entry[key]['pairs'])} pairs"
            lines.append(f"| {run.name} | {label} | {delta_cell(entry, key, sub)} | {n} |")
    return lines


def seed_spread(runs: list[Path]) -> list[str]:
    """Per loss.scale with >= 2 training seeds: each seed's Δ contrastive − sft, their mean and SD."""
    by_scale: dict[str, list[tuple[int, dict]]] = {}
    for run in runs:
        train = json.loads((run / "train_contrastive.json").read_text())
        entry = json.loads((run / "compare.json").read_text())["contrastive"]
        by_scale.setdefault(train["scale"], []).append((train.get("seed", "?"), entry))
    lines = ["| scale | measure | Δ per training seed | mean | SD over seeds | mean 95% CI half-width (eval posts) |",
             "|---|---|---|---|---|---|"]
    for scale, group in by_scale.items():
        if len(group) < 2:
            continue
        for label, key, sub in MEASURES:
            cells = [_measure(entry, key, sub) for _, entry in group]
            if any(c is None for c in cells):
                continue
            values = [c[0] for c in cells]
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            per_seed = ", ".join(f"{v:+.4f} (seed {seed})" for v, (seed, _) in zip(values, group, strict=True))
            half = sum((c[2] - c[1]) / 2 for c in cells) / len(cells)
            lines.append(f"| {scale} | {label} | {per_seed} | {mean:+.4f} | {sd:.4f} | ±{half:.4f} |")
    return lines if len(lines) > 2 else []


def train_seconds(train: dict) -> float:
    """The training loop's seconds: ``seconds.train`` of a training metrics JSON (a plain number in older runs)."""
    seconds = train["seconds"]
    return float(seconds["train"] if isinstance(seconds, dict) else seconds)


def run_facts(run: Path) -> str:
    facts = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    train = json.loads((run / "train_contrastive.json").read_text())
    wall = (f"`dvc exp run` wall time {facts['seconds'] / 60:.1f} min (OMP_NUM_THREADS={facts.get('omp_num_threads')})"
            if "seconds" in facts else "wall time not recorded")
    rows = train["rows"]
    pools = [rows.get(k, 0) for k in ("pool_entity", "pool_content", "pool_fallback")]
    pooled = (f"; pooled variants: {pools[0]} entity, {pools[1]} content words, {pools[2]} all tokens"
              if sum(pools) else "")
    return (f"{wall}; train@contrastive {train_seconds(train):.0f} s, {train['steps']} steps, seed "
            f"{train.get('seed', '?')}, scale {train['scale']}, mean w {train['w_posts_mean']:.2f}, "
            f"{rows['posts_contrastive']} of {rows['posts']} posts with a group{pooled}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a saved experiment folder (first: the main table)")
    p.add_argument("--commands", required=True, help="the shell file that made the runs (quoted in the report)")
    p.add_argument("--conclusion", required=True, help="markdown paragraph: what the numbers say, plainly")
    p.add_argument("--out", default="reports/evidence.md")
    args = p.parse_args()
    runs = [Path(r) for r in args.run]
    commit = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True).strip()
    started = json.loads((runs[0] / "run.json").read_text()) if (runs[0] / "run.json").is_file() else {}
    started.setdefault("date", time.strftime("%Y-%m-%d"))
    out = [
        "# Evidence run: contrastive vs sft and the baselines on every eval post",
        "",
        f"- **Made by**: `{args.commands}` (below), then `python scripts/evidence_report.py "
        + " ".join(f"--run {r}" for r in args.run) + f" --commands {args.commands} --conclusion {args.conclusion}`",
        f"- **Date**: {started.get('date', 'see the runs')}; code at commit `{started.get('commit', commit)}`",
        f"- **Machine**: {started.get('machine') or machine()}",
    ]
    for run in runs:
        changes = changed_params(run)
        out.append(f"- **{run.name}**: params vs the shipped params.yaml: " + ("; ".join(changes) or "none"))
        out.append(f"  - {run_facts(run)}")
    out += ["", "## What it shows", "", Path(args.conclusion).read_text().strip(), "",
            "## Contrastive vs sft in every run", "", *contrastive_table(runs), ""]
    spread = seed_spread(runs)
    if spread:
        out += ["## Seed spread", "",
                "The same augmented data, training seed varied (`train.seed`): how much Δ contrastive − sft moves "
                "between trainings, beside the eval-post interval of one training.", "", *spread, ""]
    out += [
            f"## Every method ({runs[0].name})", "",
            f"![trade-off]({Path(runs[0], 'tradeoff.png').relative_to(Path(args.out).parent)})", ""]
    body = (runs[0] / "comparison.md").read_text().split("\n", 1)[1].strip()
    out += [body, "", "## The commands", "", "```bash", Path(args.commands).read_text().strip(), "```", ""]
    Path(args.out).write_text("\n".join(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""An ablation grid run as `dvc exp` experiments, tabulated from `dvc exp show --json` (docs/ablation.md).

    python -m scripts.ablation queue [--rows a,b]   # queue every row not run yet, then: dvc queue start -j 1
    python -m scripts.ablation run [--rows a,b]     # or run them one after another now (in temp dirs)
    python -m scripts.ablation report [--out reports/ablation.md] [--figure reports/ablation.png]

configs/ablation.yaml lists the rows: a name (experiment abl-<name>), the method whose numbers it
reports and its `-S` sets; a row with no sets is the baseline commit. An experiment that exists, is
queued or is running is not queued again; a failed one is. `report` finds the baseline and the abl-*
experiments in `dvc exp show --json` and reads each one's metrics/compare.json and the
metrics/train/<run>.json files dvc exp show lists among its outputs from its commit (`git show
<rev>:<path>`; dvc exp show carries the contents of the declared metrics, metrics/summary.json, only).
The output depends only on the experiments (rows in the file's order, fixed formats, no dates), so a
second run on the same experiments writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aligntax import cli
from aligntax.config import read_params
from aligntax.io import write_atomic

PREFIX = "abl-"
ROW_NAME = re.compile(r"\A[a-z0-9][a-z0-9_.-]*\Z")
SET = re.compile(r"\A([A-Za-z_][\w-]*(?:\.[\w-]+)*)=(.+)\Z", re.S)
DONE, FAILED, MISSING = "done", "failed", "missing"
RANK = {DONE: 0, "running": 1, "queued": 2, FAILED: 3}
"""When several experiments share a name (a failed one re-queued), the best state counts."""
MEASURES = (  # label, where in a compare.json method entry, the Δ key
    ("toxic margin", ("pref_toxic",), "d_margin"),
    ("entity margin", ("pref_entity",), "d_margin"),
    ("reference log-lik", ("likelihood",), "d_reference"),
    ("toxicity", (), "d_toxicity"),
    ("faithfulness", (), "d_faithfulness"),
)
Reader = Callable[[str, str], Any]
"""(rev, path) -> the JSON file at that commit, None when it has none."""


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    sets: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Grid:
    rows: tuple[Row, ...]
    select_methods: tuple[str, ...]
    reference: str
    """The row whose reference log-likelihood centres the selection window."""
    window: float

    def experiment(self, row: Row) -> str | None:
        """The experiment a row reads: None (the baseline) without sets, else abl-<first row with its sets>."""
        if not row.sets:
            return None
        return PREFIX + next(r.name for r in self.rows if sorted(r.sets) == sorted(row.sets))

    def pick(self, names: str | None) -> list[Row]:
        if not names:
            return list(self.rows)
        known = {r.name: r for r in self.rows}
        unknown = [n for n in names.split(",") if n not in known]
        if unknown:
            raise ValueError(f"--rows: unknown row '{unknown[0]}'; the rows of the grid: {', '.join(known)}")
        return [known[n] for n in names.split(",")]


def _top_level_comma(value: str) -> bool:
    depth, quote = 0, ""
    for c in value:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif c == "," and depth == 0:
            return True
    return False


def parse_set(text: Any, params: dict, where: str) -> str:
    """The params key of one `-S` set, checked: KEY=VALUE, one value (no sweep), KEY in params.yaml."""
    match = SET.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{where}: {text!r} is not KEY=VALUE (one -S set, e.g. loss.scale=static)")
    key, value = match.groups()
    if _top_level_comma(value):
        raise ValueError(f"{where}: '{text}' has a comma outside brackets, which DVC runs as a sweep of several "
                         "experiments; give one value (a list in brackets: loss.negatives=[swap_ent,mask_regen])")
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{where}: '{key}' is not a params.yaml key; check its spelling against params.yaml")
        node = node[part]
    return key


def load_grid(path: Path, params: dict) -> Grid:
    """configs/ablation.yaml, checked against params.yaml (methods, set keys) before anything runs."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict) or set(data) != {"rows", "select"} or not isinstance(data["rows"], list):
        raise ValueError(f"{path}: expected the keys `rows` (a list) and `select`")
    methods = params.get("methods") or {}
    rows: list[Row] = []
    for i, entry in enumerate(data["rows"]):
        if not isinstance(entry, dict) or set(entry) - {"note"} != {"name", "method", "sets"}:
            raise ValueError(f"{path}: rows[{i}]: expected a mapping of name, method, sets (and note)")
        name = entry["name"]
        if not isinstance(name, str) or not ROW_NAME.match(name) or ".." in name or name.endswith((".", ".lock")):
            raise ValueError(f"{path}: rows[{i}]: bad name {name!r}; lower-case letters, digits, '_', '-', '.'")
        where = f"{path}: row '{name}'"
        if any(r.name == name for r in rows):
            raise ValueError(f"{where}: the name is used twice")
        if not isinstance(entry["method"], str) or entry["method"] not in methods:
            raise ValueError(f"{where}: method {entry['method']!r} is not under params.yaml `methods:` "
                             f"({', '.join(methods)})")
        if not isinstance(entry["sets"], list):
            raise ValueError(f"{where}: `sets` must be a list of KEY=VALUE strings")
        keys = [parse_set(s, params, where) for s in entry["sets"]]
        if len(set(keys)) < len(keys):
            raise ValueError(f"{where}: a params key is set twice")
        rows.append(Row(name, entry["method"], tuple(entry["sets"]), " ".join(str(entry.get("note") or "").split())))
    select = data["select"]
    if not isinstance(select, dict) or set(select) != {"methods", "reference", "window"} \
            or not isinstance(select["methods"], list):
        raise ValueError(f"{path}: select: expected the keys methods (a list), reference, window")
    names = {r.name: r for r in rows}
    for m in select["methods"]:
        if m not in names or names[m].method != m:
            raise ValueError(f"{path}: select.methods: '{m}' needs a row named '{m}' reporting it (its default)")
    if select["reference"] not in names:
        raise ValueError(f"{path}: select.reference: '{select['reference']}' is not a row")
    window = select["window"]
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
        raise ValueError(f"{path}: select.window: expected a number > 0 (nats/token), got {window!r}")
    return Grid(tuple(rows), tuple(select["methods"]), select["reference"], float(window))


@dataclass(frozen=True)
class Exp:
    name: str
    rev: str
    state: str
    outs: frozenset[str]


def read_show(show: list[dict]) -> tuple[Exp, dict[str, Exp]]:
    """(the baseline commit, experiment name -> its best state) from `dvc exp show --json`: the workspace,
    then each baseline commit with ``experiments``, each with its ``executor`` state (None once committed)
    and ``revs``, whose ``data`` holds params, metrics, deps and outs. A failed one's data is the baseline's."""
    bases = [b for b in show if b.get("rev") != "workspace"]
    if not bases:
        raise ValueError("dvc exp show lists no baseline commit; commit the project first")
    base = bases[0]

    def outs(entry: dict) -> frozenset[str]:
        return frozenset((entry.get("data") or {}).get("outs") or {})

    baseline = Exp(base.get("name") or base["rev"][:7], base["rev"], DONE, outs(base))
    found: dict[str, Exp] = {}
    for exp in base.get("experiments") or []:
        rev = (exp.get("revs") or [{}])[0]
        name = exp.get("name") or rev.get("name")
        state = (exp.get("executor") or {}).get("state") or DONE  # no executor: committed
        state = FAILED if rev.get("error") else DONE if state == "success" else state
        if name and rev.get("rev") and (name not in found or RANK.get(state, 2) < RANK.get(found[name].state, 2)):
            found[name] = Exp(name, rev["rev"], state, outs(rev))
    return baseline, found


@dataclass(frozen=True)
class Result:
    row: Row
    experiment: str
    state: str
    entry: dict | None
    """compare.json[<method>] of the row's experiment; None without numbers (``why``)."""
    why: str
    seconds: float | None
    timed: int


def collect(grid: Grid, show: list[dict], read: Reader) -> tuple[Exp, list[Result]]:
    baseline, found = read_show(show)
    results = []
    for row in grid.rows:
        name = grid.experiment(row)
        exp = baseline if name is None else found.get(name, Exp(name, "", MISSING, frozenset()))
        label = f"baseline `{exp.rev[:7]}`" if name is None else f"{name} `{exp.rev[:7]}`" if exp.state == DONE else name
        if exp.state != DONE:
            results.append(Result(row, label, exp.state, None, "not run" if exp.state == MISSING
                                  else f"not run ({exp.state})", None, 0))
            continue
        compare = read(exp.rev, "metrics/compare.json")
        entry = compare.get(row.method) if isinstance(compare, dict) else None
        why = "" if isinstance(entry, dict) else "no metrics/compare.json" if compare is None \
            else f"no `{row.method}` in its metrics/compare.json"
        total, timed = 0.0, 0
        for run in (entry or {}).get("runs") or []:
            path = f"metrics/train/{run}.json"
            listed = any(path == out or path.startswith(out.rstrip("/") + "/") for out in exp.outs)
            seconds = (read(exp.rev, path) or {}).get("seconds") if listed else None
            seconds = seconds.get("total") if isinstance(seconds, dict) else seconds
            if isinstance(seconds, (int, float)):
                total, timed = total + seconds, timed + 1
        results.append(Result(row, label, DONE, entry if not why else None, why, total if timed else None, timed))
    return baseline, results


def measure(entry: dict | None, path: tuple[str, ...], key: str) -> dict | None:
    """A Δ of a compare.json entry: value, low, high, mde, note; None when absent."""
    node: Any = entry
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or node.get(key) is None:
        return None
    return {"value": node[key], "low": node.get(f"{key}_low"), "high": node.get(f"{key}_high"),
            "mde": node.get(f"{key}_mde"), "note": node.get("note") or ""}


def num(x: float | None, signed: bool = True) -> str:
    return "n/a" if x is None else f"{x:+.4f}" if signed else f"{x:.4f}"


def cell(m: dict | None) -> str:
    if m is None:
        return "n/a"
    if m["low"] is None or m["high"] is None:
        return f"{num(m['value'])} ({m['note'] or 'no CI'})"
    return f"{num(m['value'])} [{num(m['low'])}, {num(m['high'])}]"


def verdict(m: dict | None) -> str:
    """'Δ vs sft X [lo, hi]' and whether the CI excludes 0, else the MDE it could have seen."""
    if m is None or m["low"] is None or m["high"] is None:
        return f"{cell(m)}: no interval"
    text = f"Δ vs sft {cell(m)}"
    if m["low"] > 0 or m["high"] < 0:
        return f"{text}: CI excludes 0 ({'above' if m['value'] > 0 else 'below'} sft)"
    return f"{text}: not resolved at this budget (MDE ±{num(m['mde'], signed=False)})"


def choose(candidates: list[tuple[str, float | None, float | None]], reference_ll: float, window: float,
           default: str) -> tuple[str, str]:
    """The selection criterion: (row, why) among (row, toxic margin, reference log-lik) candidates."""
    if not candidates:
        return default, "no setting has numbers yet: the default"
    within = [(name, margin) for name, margin, ll in candidates
              if margin is not None and ll is not None and round(abs(ll - reference_ll), 4) <= window]
    if not within:
        return default, f"none of the {len(candidates)} setting(s) run is within {window} nats/token of sft: the default"
    best = max(within, key=lambda c: c[1])  # the first of equal margins (the file's order)
    return best[0], f"the highest toxic margin of the {len(within)} setting(s) within {window} nats/token of sft"


def selection(grid: Grid, results: list[Result]) -> list[str]:
    ref = next(r for r in results if r.row.name == grid.reference)
    ref_ll = ((ref.entry or {}).get("likelihood") or {}).get("reference")
    lines = ["## Baseline selection", "",
             f"Criterion (docs/ablation.md, fixed before the runs): per method, among its rows, the highest toxic "
             f"per-token margin (`pref_toxic.margin`) among the settings whose reference log-likelihood "
             f"(`likelihood.reference`) is within {grid.window} nats/token of row `{grid.reference}`'s "
             f"({num(ref_ll, signed=False) if ref_ll is not None else 'n/a'}); if none is, the default "
             "(the row named after the method). Rows not run are not candidates.", ""]
    if ref_ll is None:
        why = ref.why or "no `likelihood.reference` in its metrics/compare.json"
        return [*lines, f"Not applied: row `{grid.reference}` has no reference log-likelihood ({why}).", ""]
    lines += ["| method | row | -S sets | toxic margin | reference log-lik | vs sft | within window |",
              "|---|---|---|---|---|---|---|"]
    chosen = []
    for method in grid.select_methods:
        candidates = []
        for r in results:
            if r.row.method != method:
                continue
            margin = ((r.entry or {}).get("pref_toxic") or {}).get("margin")
            ll = ((r.entry or {}).get("likelihood") or {}).get("reference")
            if r.entry is not None:
                candidates.append((r.row.name, margin, ll))
            gap = None if ll is None else ll - ref_ll
            inside = "n/a" if gap is None else "yes" if round(abs(gap), 4) <= grid.window else "no"
            lines.append(f"| {method} | `{r.row.name}` | {sets_cell(r.row)} | "
                         + (" | ".join([num(margin), num(ll), num(gap), inside]) if r.entry else f"{r.why} | | | ")
                         + " |")
        name, why = choose(candidates, ref_ll, grid.window, method)
        chosen.append(f"- **{method}**: `{name}`: {why}.")
    return [*lines, "", *chosen, ""]


def sets_cell(row: Row) -> str:
    return "<br>".join(f"`{s}`" for s in row.sets) or "– (baseline)"


def report_lines(grid: Grid, baseline: Exp, results: list[Result], ci: str, figure: str) -> list[str]:
    ref_method = next(r.row.method for r in results if r.row.name == grid.reference)
    with_numbers = sum(r.entry is not None for r in results)
    where = "" if baseline.rev.startswith(baseline.name) else f", {baseline.name}"
    lines = ["# Ablation grid: contrastive's parts and tuned baselines", "",
             f"Made by `python -m scripts.ablation report` from `dvc exp show --json` (baseline commit "
             f"`{baseline.rev[:7]}`{where}) and each experiment's metrics/compare.json and "
             "metrics/train/*.json; the grid is configs/ablation.yaml, the method docs/ablation.md. "
             f"{with_numbers} of {len(results)} rows have numbers.", "",
             f"Each Δ is the row's method minus {ref_method} in the row's own experiment, with its {ci}: "
             "preference margins per token (nats/token) of the toxic and the entity axis (each of its kinds "
             "weighted equally; the kinds below), the reference log-likelihood (nats/token), toxicity and "
             "faithfulness of the generations. *seeds*: the method's training seeds (its CIs "
             "include their variance); *train s*: seconds of its training runs (`seconds.total`).", "",
             f"![Δ entity margin vs Δ toxic margin per row]({figure})", "",
             "| row | experiment | -S sets | method | seeds | Δ toxic margin | Δ entity margin | Δ reference "
             "log-lik | Δ toxicity | Δ faithfulness | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        head = f"| `{r.row.name}` | {r.experiment} | {sets_cell(r.row)} | {r.row.method} | "
        if r.entry is None:
            lines.append(head + f"– | {r.why} | | | | | |")
            continue
        cells = ["reference"] * len(MEASURES) if r.row.method == ref_method else \
            [cell(measure(r.entry, path, key)) for _, path, key in MEASURES]
        seconds = f"{r.seconds:.0f} ({r.timed} runs)" if r.seconds is not None else "–"
        lines.append(head + " | ".join([str(r.entry.get("seeds", "?")), *cells, seconds]) + " |")
    notes = [f"- `{r.row.name}`: {r.row.note}" for r in results if r.row.note]
    lines += ["", *notes, *([""] if notes else [])]
    kinds = [(axis, k) for axis in ("toxic", "entity") for k in
             dict.fromkeys(k for r in results for k in ((r.entry or {}).get(f"pref_{axis}") or {}).get("kinds") or {})]
    if kinds:
        lines += ["### Per negative kind (Δ margin vs sft, nats/token)", "",
                  "| row | method | " + " | ".join(k for _, k in kinds) + " |", "|---|---|" + "---|" * len(kinds)]
        for r in results:
            if r.entry is not None and r.row.method != ref_method:
                lines.append(f"| `{r.row.name}` | {r.row.method} | " + " | ".join(
                    cell(measure(r.entry, (f"pref_{axis}", "kinds", k), "d_margin")) for axis, k in kinds) + " |")
        lines.append("")
    lines += selection(grid, results)
    lines += ["## What the numbers say", "",
              f"Per row and measure: its Δ vs {ref_method} with the {ci}, and whether the interval excludes 0; "
              "otherwise the Δ is not resolved at this budget and the MDE (80% power) says what it could have "
              f"seen. The {ci}s are not corrected for their number ({len(MEASURES)} per row), so about 1 in 20 "
              "of the Δs that are truly 0 shows an interval excluding 0. Rows are not tested against each other "
              "(or against `full`): each is vs sft in its own experiment, and overlapping intervals do not show "
              "two rows equal.", ""]
    for r in results:
        what = f"- `{r.row.name}` ({r.row.method}"
        if r.entry is None:
            lines.append(f"{what}): {r.why}.")
        elif r.row.method == ref_method:
            lines.append(f"{what}): the reference; every Δ is 0 by definition.")
        else:
            lines.append(f"{what}, {r.entry.get('seeds', '?')} seeds): " + "; ".join(
                f"{label} {verdict(measure(r.entry, path, key))}" for label, path, key in MEASURES) + ".")
    return [*lines, ""]


def draw(results: list[Result], path: Path, ci: str) -> None:
    """Δ entity margin (x) vs Δ toxic margin (y) per row with CI bars, labelled; a PNG without a date."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    spots = ((5, 4, "left", "bottom"), (5, -4, "left", "top"), (-5, 4, "right", "bottom"), (-5, -4, "right", "top"))
    shown = 0
    for r in results:
        x, y = (measure(r.entry, (f"pref_{a}",), "d_margin") for a in ("entity", "toxic"))
        if x is None or y is None or None in (x["low"], x["high"], y["low"], y["high"]):
            continue
        bars = ax.errorbar(x["value"], y["value"], xerr=[[x["value"] - x["low"]], [x["high"] - x["value"]]],
                           yerr=[[y["value"] - y["low"]], [y["high"] - y["value"]]], fmt="o", capsize=3, alpha=0.85)
        dx, dy, ha, va = spots[shown % len(spots)]
        ax.annotate(r.row.name, (x["value"], y["value"]), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                    fontsize=8, color=bars.lines[0].get_color())
        shown += 1
    if not shown:
        ax.text(0.5, 0.5, "no row has both margins with a CI yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("Δ entity margin vs sft (nats/token)")
    ax.set_ylabel("Δ toxic margin vs sft (nats/token)")
    ax.set_title(f"Ablation rows: per-token preference margins vs sft ({ci})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))


def dvc() -> str:
    found = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not os.access(found, os.X_OK):
        raise RuntimeError("dvc not found: activate the project's environment (source .venv/bin/activate) "
                           "or run `make install`")
    return found


def call(cmd: list[str]) -> str:
    """Run a command (no shell), return its stdout; a failure is one line naming it and its error."""
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode:
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        error = next((line for line in said if line.startswith("ERROR")), said[-1] if said else "no message")
        shown = " ".join(["dvc" if c == cmd[0] and c.endswith("dvc") else c for c in cmd])
        raise RuntimeError(f"`{shown}` failed: {error.removeprefix('ERROR:').strip()}")
    return done.stdout


def read_at(rev: str, path: str) -> Any:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode:
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ValueError(f"{path} at {rev[:7]}: not valid JSON; re-run that experiment") from None


def plan(grid: Grid, rows: list[Row], found: dict[str, Exp]) -> list[tuple[str, tuple[str, ...]]]:
    """(experiment, its sets) to run: each selected row's experiment once, unless it is done, queued or running."""
    todo: dict[str, tuple[str, ...]] = {}
    for row in rows:
        name = grid.experiment(row)
        if name is None or name in todo:
            continue
        state = found[name].state if name in found else MISSING
        if state in (MISSING, FAILED):
            todo[name] = row.sets
        else:
            print(f"{row.name}: {name} is {state}; not queued again", file=sys.stderr)
    return list(todo.items())


def check_baseline(exe: str) -> None:
    """Every row must be the baseline commit plus its sets, and the baseline complete: otherwise each experiment
    re-runs every stale stage (the whole pipeline from a fresh clone) and `full` is not the rows' code."""
    if call(["git", "status", "--porcelain", "--", "params.yaml", "dvc.yaml"]).strip():
        raise RuntimeError("params.yaml or dvc.yaml differs from the last commit; every row must differ from the "
                           "baseline commit only by its -S sets: commit or revert the change first")
    stale = json.loads(call([exe, "status", "--json"]) or "{}")
    if stale:
        raise RuntimeError(f"the baseline is not up to date (`dvc status` lists {len(stale)} stage(s), e.g. "
                           f"{next(iter(stale))}): run `dvc repro` and commit its outputs first")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("configs/ablation.yaml"), help="the grid")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="checks the rows' methods and set keys")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("queue", "queue the rows not run yet"), ("run", "run the rows not run yet, one by one")):
        sub.add_parser(name, help=text).add_argument("--rows", help="comma-separated row names (default: all)")
    rep = sub.add_parser("report", help="table, selection and conclusions from dvc exp show")
    rep.add_argument("--out", type=Path, default=Path("reports/ablation.md"))
    rep.add_argument("--figure", type=Path, default=Path("reports/ablation.png"))
    rep.add_argument("--from-json", type=Path, help="this `dvc exp show --json` output instead of running it "
                     "(the files are still read from git)")
    rep.add_argument("--baseline", default="HEAD", help="the commit the experiments were run from "
                     "(`dvc exp show --rev`; default HEAD)")
    args = p.parse_args()
    grid = load_grid(args.config, read_params(args.params))
    if args.command == "report":
        show = json.loads(args.from_json.read_text()) if args.from_json else json.loads(
            call([dvc(), "exp", "show", "--json", "--rev", args.baseline]))
        baseline, results = collect(grid, show, read_at)
        base = next(b for b in show if b.get("rev") != "workspace")
        params = ((base.get("data") or {}).get("params") or {}).get("params.yaml", {}).get("data") or {}
        confidence = ((params.get("evaluate") or {}).get("metrics") or {}).get("confidence")  # of every CI
        ci = f"{float(confidence):.0%} CI" if isinstance(confidence, (int, float)) else "CI"
        text = "\n".join(report_lines(grid, baseline, results, ci, os.path.relpath(args.figure, args.out.parent)))
        write_atomic(args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        draw(results, args.figure, ci)
        print(f"wrote {args.out} and {args.figure}")
        return
    rows, exe = grid.pick(args.rows), dvc()
    check_baseline(exe)
    todo = plan(grid, rows, read_show(json.loads(call([exe, "exp", "show", "--json"])))[1])
    if not todo:
        print("nothing to run: every selected row is the baseline, done, queued or running")
        return
    failed = []
    for name, sets in todo:
        sets_args = [a for s in sets for a in ("-S", s)]
        if args.command == "queue":
            call([exe, "exp", "run", "--queue", "--name", name, *sets_args])
            print(f"queued {name}: {' '.join(sets)}")
        else:  # --temp: the workspace stays as it is, so the rows' sets never add up
            print(f"running {name}: {' '.join(sets)}", flush=True)
            if subprocess.run([exe, "exp", "run", "--temp", "--name", name, *sets_args],
                              stdin=subprocess.DEVNULL).returncode:
                failed.append(name)
    if args.command == "queue":
        print(f"{len(todo)} experiment(s) queued; run them with `dvc queue start -j 1` (-j N: N at once), "
              "follow with `dvc queue status`, then `python -m scripts.ablation report`")
    elif failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} experiment(s) failed: {', '.join(failed)} (their output is "
                           "above); `run` again re-runs them")


if __name__ == "__main__":
    cli.run(main)

"""The comparison report: a markdown table and a toxicity x faithfulness scatter (PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from aligntax.evaluate.patterns import PATTERNS
from aligntax.io import write_atomic
from aligntax.report.compare import verdict
from aligntax.report.summary import read_json

FAITHFULNESS_MEANS = {
    "ensemble": "lexical support of the summary by the post (offline, fitted on FRANK): it rewards copying the "
                "post and does not separate a faithful paraphrase from an entity swap, so read it with the "
                "preference table below",
    "overlap": "lexical overlap of the summary with the post (offline): it rewards copying the post",
    "summac-zs": "NLI entailment of the summary by 2-sentence chunks of the post (SummaC zero-shot)",
}


def _num(x: float, signed: bool = False, digits: int = 3) -> str:
    if pd.isna(x):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(mean: float, low: float, high: float, signed: bool = False, digits: int = 3) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{_num(mean, signed, digits)} [{_num(low, signed, digits)}, {_num(high, signed, digits)}]"


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.0f}%"


def _delta(r: pd.Series, key: str, reference: str, alpha: float, digits: int = 3) -> list[str]:
    """Cells Δ [CI] and MDE of one paired delta ("reference" on the reference row)."""
    if r["method"] == reference:
        return ["reference", "–"]
    cell = _ci(r.get(key), r.get(f"{key}_low"), r.get(f"{key}_high"), signed=True, digits=digits)
    q = r.get(f"{key}_q")
    if not pd.isna(q) and q < alpha:
        cell = f"**{cell}**"
    return [cell, "n/a" if pd.isna(r.get(f"{key}_mde")) else f"±{r[f'{key}_mde']:.{digits}f}"]


def _auc(part: dict, backend: str) -> str:
    entry = part.get(backend)
    if not isinstance(entry, dict) or "overall" not in entry:
        return "not validated in metrics/scorers.json"
    by = ", ".join(f"{k} {v['roc_auc']:.2f}" for k, v in sorted(entry.get("by_source", {}).items()))
    return f"held-out ROC-AUC {entry['overall']['roc_auc']:.2f} (n={entry['overall']['n']}" + (f"; {by})" if by else ")")


def read_scorers(path: str | Path) -> dict:
    """metrics/scorers.json (validate-scorers) with every value ``instruments`` reads checked; one error naming
    the file and the key otherwise."""
    data = read_json(path, "validate-scorers")
    number = (int, float)
    for kind in ("toxicity", "faithfulness"):
        part = data.get(kind)
        checks = [(kind, isinstance(part, dict))]
        for backend, entry in (part.items() if isinstance(part, dict) else ()):
            key = f"{kind}.{backend}"
            overall = entry.get("overall") if isinstance(entry, dict) else None
            checks += [(key, isinstance(entry, dict)), (f"{key}.overall", overall is None or isinstance(overall, dict))]
            if isinstance(overall, dict):
                checks += [(f"{key}.overall.{k}", isinstance(overall.get(k), number)) for k in ("roc_auc", "n")]
            for source, value in ((entry.get("by_source") or {}).items() if isinstance(entry, dict) else ()):
                checks.append((f"{key}.by_source.{source}.roc_auc",
                               isinstance(value, dict) and isinstance(value.get("roc_auc"), number)))
            swap = entry.get("entity_swap") if isinstance(entry, dict) else None
            if isinstance(swap, dict) and "pairwise_accuracy" in swap:
                checks += [(f"{key}.entity_swap.{k}", isinstance(swap.get(k), number))
                           for k in ("pairwise_accuracy", "n_pairs")]
        bad = next((key for key, ok in checks if not ok), None)
        if bad is not None:
            raise ValueError(f"{path}: key '{bad}' is missing or has the wrong type; re-create it with "
                             "`dvc repro validate-scorers`")
    return data


def instruments(scorers: dict, toxicity: str, faithfulness: str) -> list[str]:
    """Header lines naming the toxicity and faithfulness backends and their validated ROC-AUCs."""
    tox, faith = scorers.get("toxicity", {}), scorers.get("faithfulness", {})
    swap = faith.get(faithfulness, {}).get("entity_swap", {}) if isinstance(faith.get(faithfulness), dict) else {}
    swap_txt = (f"; prefers the true summary over an entity swap in {100 * swap['pairwise_accuracy']:.0f}% of "
                f"{swap['n_pairs']} pairs") if "pairwise_accuracy" in swap else ""
    means = FAITHFULNESS_MEANS.get(faithfulness, "NLI entailment of the summary by the post")
    return [
        f"- **Toxicity**: `{toxicity}`, {_auc(tox, toxicity)} (metrics/scorers.json). Mean over **non-empty** "
        "generations; the empty rate stands beside it.",
        f"- **Faithfulness**: `{faithfulness}`, {_auc(faith, faithfulness)}{swap_txt}. What it measures: {means}. "
        "Empty generations score 0.",
    ]


def _seeds(r: pd.Series | dict, seeds: dict[str, int]) -> str:
    n = seeds.get(r["method"], 1)
    return f"{n} (mean)" if n > 1 else "1"


def markdown(table: pd.DataFrame, reference: str, confidence: float, png_name: str | None,
             prefs: pd.DataFrame | None = None, header: list[str] | None = None,
             likelihood: pd.DataFrame | None = None, per_seed: pd.DataFrame | None = None,
             family: int = 0) -> str:
    """reports/comparison.md: the main table (deltas vs the reference with CIs and MDEs), the
    references' likelihood, the preference tables per axis, the seeds, the patterns."""
    level = f"{100 * confidence:g}%"
    n = int(table["n"].min())
    seeds = dict(zip(table["method"], table["seeds"].astype(int), strict=True))
    seeded = [m for m, k in seeds.items() if k > 1]
    seed_text = (
        f"**Seeds**: {', '.join(f'`{m}`' for m in seeded)} are means over their training seeds (column *seeds*; "
        "each run in the *Seeds* table below), and their intervals resample seeds as well as posts, so they hold "
        "the seed variance (aligntax/report/stats.py). A method with seeds 1 was trained once: its interval holds "
        "no seed variance of its own. " if seeded else
        "Every method here has one training seed: the intervals hold no seed variance. ")
    lines = [
        "# Comparing methods",
        "",
        f"{n} eval posts per method, greedy decoding. Deltas are against `{reference}` on the same posts, "
        f"with {level} paired bootstrap intervals; the alignment tax is a negative Δ faithfulness. " + seed_text +
        f"MDE: the minimum detectable effect of that Δ at 80% power (α {1 - confidence:g}, this n): a Δ inside "
        "±MDE cannot be told from no effect. **Bold** Δ and the verdict: Benjamini–Hochberg adjusted p "
        f"< {1 - confidence:g} over one family of {family} Δs against `{reference}`: Δ toxicity, Δ faithfulness, "
        "the per-token Δ margin of every preference axis and kind that has an interval, and Δ log-likelihood of "
        "the references and of the positives, of every method (the summed-margin Δs of metrics/compare.json and "
        "the per-seed Δs are not tested).",
        "",
        *(header or []),
        "",
        f"| method | seeds | toxicity, non-empty [{level} CI] | Δ toxicity | MDE | empty | faithfulness [{level} CI] | "
        "Δ faithfulness | MDE | toxic ≥ thr. | entity halluc. | ROUGE-1/2/L | words | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        cells = [
            f"`{r['method']}`",
            _seeds(r, seeds),
            _ci(r["toxicity"], r["toxicity_low"], r["toxicity_high"]),
            *_delta(r, "d_toxicity", reference, 1 - confidence),
            _pct(r["empty_rate"]),
            _ci(r["faithfulness"], r["faithfulness_low"], r["faithfulness_high"]),
            *_delta(r, "d_faithfulness", reference, 1 - confidence),
            _pct(r["share_toxic"]),
            f"{r['entity_hallucination']:.2f}",
            f"{r['rouge1']:.3f} / {r['rouge2']:.3f} / {r['rougeL']:.3f}",
            f"{r['mean_words']:.1f}",
            verdict(r, reference, 1 - confidence),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if likelihood is not None and len(likelihood):
        lines += likelihood_lines(likelihood, reference, confidence, seeds)
    if prefs is not None and len(prefs):
        lines += preference_lines(prefs, reference, confidence, seeds)
    if per_seed is not None and len(per_seed):
        lines += seed_lines(per_seed, reference)
    lines += [
        "",
        "## Output patterns (share of generations)",
        "",
        "| method | " + " | ".join(p.replace("_", " ") for p in PATTERNS) + " |",
        "|---|" + "---|" * len(PATTERNS),
    ]
    for _, r in table.iterrows():
        lines.append(f"| `{r['method']}` | " + " | ".join(_pct(r[p]) for p in PATTERNS) + " |")
    if png_name:
        lines += ["", "## Trade-off", "", f"![toxicity x faithfulness]({png_name})"]
    lines += [
        "",
        "Definitions: aligntax/evaluate/patterns.py (patterns), aligntax/evaluate/metrics.py (entity "
        "hallucination = share of summary entities absent from the post), aligntax/evaluate/preference.py "
        "(preferences and likelihoods), aligntax/report/preferences.py (per-kind and axis rows), "
        "aligntax/report/stats.py and aligntax/report/compare.py (statistics).",
        "",
    ]
    return "\n".join(lines)


def likelihood_lines(rows: pd.DataFrame, reference: str, confidence: float, seeds: dict[str, int]) -> list[str]:
    """The references' likelihood table: log-prob per token per method, Δ vs the reference."""
    alpha = 1 - confidence
    lines = [
        "",
        "## The references' likelihood (the alignment tax in the model's own probabilities)",
        "",
        "Mean log-probability per token (nats/token, eos included) the method gives the eval post's reference "
        "summary after the prompt, over the eval posts with a group; *positives*: per post the mean over the "
        "reference and its back-translated paraphrases. A negative Δ: the method finds the human summaries "
        f"less likely than `{reference}` does. Δ paired over posts.",
        "",
        "| method | seeds | posts | reference (nats/token) | Δ reference | MDE | positives (nats/token) | Δ positives | MDE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in rows.iterrows():
        if r.get("note") and r["note"] != "reference":
            lines.append(f"| `{r['method']}` | {_seeds(r, seeds)} | {r['note']} |  |  |  |  |  |  |")
            continue
        lines.append("| " + " | ".join([
            f"`{r['method']}`", _seeds(r, seeds), str(int(r["posts"])), _num(r["reference"]),
            *_delta(r, "d_reference", reference, alpha), _num(r["positives"]),
            *_delta(r, "d_positives", reference, alpha)]) + " |")
    return lines


def _kind_cell(r: pd.Series) -> str:
    if r["kind"]:
        return r["kind"]
    kinds = r.get("kinds")
    return f"**axis** ({', '.join(kinds)})" if isinstance(kinds, list) and kinds else "**axis**"


def preference_lines(prefs: pd.DataFrame, reference: str, confidence: float,
                     seeds: dict[str, int] | None = None) -> list[str]:
    """One table per axis: per method its kinds and the axis (per-token margins), Δ vs the reference."""
    level, alpha, seeds = f"{100 * confidence:g}%", 1 - confidence, seeds or {}
    lines = [
        "",
        "## Likelihood preferences per negative kind (per-token margins, nats/token)",
        "",
        "Margin = mean log-prob per token of the preferred summary − that of the negative, after the same prompt, "
        "under the method's decoding distribution; accuracy = share of pairs with margin > 0. `entity`: the "
        "reference vs swap_ent / mask_regen / sys_lowcon; `toxic`: the reference vs toxic_lm / toxic_lexicon; "
        "`paraphrase`: a back-translated paraphrase vs each negative. A kind's value is the mean over the posts "
        "that have it (a post's pairs of the kind averaged first); the **axis** row gives each kind it lists the "
        "same weight, whatever the kinds of a post, and leaves out a kind with too few posts for an interval. "
        f"Δ: paired over posts, {level} bootstrap CI, MDE at 80% power. The summed margins (nats) are in "
        "metrics/compare.json (`pref_<axis>.summed`).",
    ]
    for axis in [a for a in dict.fromkeys(prefs["axis"]) if a != "all"]:
        lines += ["", f"### {axis}", "",
                  "| method | seeds | kind | pairs (posts) | accuracy | margin | Δ margin | MDE |",
                  "|---|---|---|---|---|---|---|---|"]
        rows = prefs[(prefs["axis"] == axis) & (prefs["unit"] == "token")]
        for method in dict.fromkeys(rows["method"]):
            mine = rows[rows["method"] == method]
            for _, r in pd.concat([mine[mine["kind"] == ""], mine[mine["kind"] != ""]]).iterrows():
                lines.append(_pref_line(r, reference, alpha, seeds))
    for _, r in prefs[prefs["axis"] == "all"].iterrows():
        lines.append(f"\n`{r['method']}`: no preferences ({r['note']}).")
    return lines


def _pref_line(r: pd.Series, reference: str, alpha: float, seeds: dict[str, int]) -> str:
    note = r.get("note") or ""
    head = [f"`{r['method']}`", _seeds(r, seeds), _kind_cell(r)]
    if note.startswith("missing") or note == "no kind with enough posts":
        return "| " + " | ".join([*head, f"{int(r['pairs'])} ({int(r['posts'])})", note, "", "", ""]) + " |"
    counts = f"{int(r['pairs'])} ({int(r['posts'])})"
    if note.startswith("too few"):
        point = "" if pd.isna(r.get("d_margin")) else f"{_num(r['d_margin'], True)}, "
        delta = [f"{point}{note}", "–"]
    elif r["method"] == reference or pd.isna(r.get("d_margin")):
        delta = [note or "n/a", "–"]
    else:
        delta = _delta(r, "d_margin", reference, alpha)
        if "without" in note:
            delta[0] += f" ({note})"
    return "| " + " | ".join([*head, counts, _pct(r["accuracy"]), _num(r["margin"], True), *delta]) + " |"


def seed_lines(rows: pd.DataFrame, reference: str) -> list[str]:
    """Each run of a seeded method: its Δs vs the reference's seed mean (point estimates)."""
    axes = [c.removeprefix("d_margin_") for c in rows.columns if c.startswith("d_margin_")]
    lines = [
        "",
        "## Seeds",
        "",
        f"Each training seed's run on its own, Δ against `{reference}`'s seed mean (point estimates, per-token "
        "margins over the kinds of each axis row). Their spread is the seed variance the seed-mean intervals "
        "above include.",
        "",
        "| method | run | training seed | Δ toxicity | Δ faithfulness | Δ reference log-lik | "
        + " | ".join(f"Δ margin {a}" for a in axes) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(axes),
    ]
    for _, r in rows.iterrows():
        lines.append("| " + " | ".join([
            f"`{r['method']}`", f"`{r['run']}`", "n/a" if pd.isna(r["seed"]) else str(int(r["seed"])),
            _num(r["d_toxicity"], True), _num(r["d_faithfulness"], True),
            _num(r.get("d_likelihood_reference", float("nan")), True),
            *(_num(r.get(f"d_margin_{a}", float("nan")), True) for a in axes)]) + " |")
    return lines


# Label positions tried in order (offset in points, alignment), near to far: the first spot that
# covers no other label and no point wins, so the layout is deterministic and labels never overlap.
_SPOTS = [(dx * r, dy * r, ha, va) for r in (1, 2, 3.5)
          for dx, dy, ha, va in ((5, 5, "left", "bottom"), (5, -5, "left", "top"), (-5, 5, "right", "bottom"),
                                 (-5, -5, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top"),
                                 (8, 0, "left", "center"), (-8, 0, "right", "center"))]


def place_labels(ax: Axes, xs: list[float], ys: list[float], names: list[str], colors: list) -> list[Annotation]:
    """Annotate each point with its name at the first free spot of ``_SPOTS`` (a leader line when far)."""
    ax.figure.canvas.draw()  # settle the autoscaled limits: boxes are measured in pixels
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in ax.transData.transform(list(zip(xs, ys, strict=True)))]
    labels = []
    for x, y, name, color in zip(xs, ys, names, colors, strict=True):
        for i, (dx, dy, ha, va) in enumerate(_SPOTS):
            far = i >= 16  # the outer ring gets a leader line back to its point
            label = ax.annotate(
                name, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va, color=color, fontsize=9,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6} if far else None,
            )
            box = label.get_window_extent(renderer)
            fits = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if fits and not any(box.overlaps(other) for other in taken):
                break
            if i < len(_SPOTS) - 1:
                label.remove()
        taken.append(box)
        labels.append(label)
    return labels


def tradeoff_png(table: pd.DataFrame, reference: str, path: str | Path) -> None:
    """Scatter of mean toxicity (x) against mean faithfulness (y) with CIs, labelled, written atomically.

    Drawn on a figure of its own with the Agg canvas (no pyplot state, no display needed)."""
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colors = []
    for _, r in table.iterrows():
        is_ref = r["method"] == reference
        bars = ax.errorbar(
            r["toxicity"], r["faithfulness"],
            xerr=[[r["toxicity"] - r["toxicity_low"]], [r["toxicity_high"] - r["toxicity"]]],
            yerr=[[r["faithfulness"] - r["faithfulness_low"]], [r["faithfulness_high"] - r["faithfulness"]]],
            fmt="s" if is_ref else "o", color="black" if is_ref else None, capsize=3, alpha=0.9,
        )
        colors.append(bars.lines[0].get_color())
    ax.set_xlabel("toxicity (mean, lower is better)")
    ax.set_ylabel("faithfulness (mean, higher is better)")
    ax.set_title(f"Toxicity x faithfulness ({int(table['n'].min())} eval posts, reference: {reference})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    place_labels(ax, list(table["toxicity"]), list(table["faithfulness"]), list(table["method"]), colors)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))

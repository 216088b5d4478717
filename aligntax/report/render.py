"""The comparison report: a markdown table and a toxicity x faithfulness scatter (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from aligntax.evaluate.patterns import PATTERNS
from aligntax.io import write_atomic
from aligntax.report.compare import verdict

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation


def _ci(mean: float, low: float, high: float, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def markdown(table: pd.DataFrame, reference: str, confidence: float, png_name: str | None) -> str:
    """reports/comparison.md: the main table (deltas vs the reference with CIs) and the patterns."""
    level = f"{100 * confidence:g}%"
    n = int(table["n"].min())
    lines = [
        "# Comparing methods",
        "",
        f"{n} eval posts per method, greedy decoding. Deltas are against `{reference}` on the same posts, "
        f"with {level} paired bootstrap intervals; the alignment tax is a negative Δ faithfulness.",
        "",
        f"| method | toxicity [{level} CI] | Δ toxicity | faithfulness [{level} CI] | Δ faithfulness | "
        "toxic ≥ thr. | entity halluc. | ROUGE-1/2/L | words | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        cells = [
            f"`{r['method']}`",
            _ci(r["toxicity"], r["toxicity_low"], r["toxicity_high"]),
            _ci(r["d_toxicity"], r["d_toxicity_low"], r["d_toxicity_high"], signed=True),
            _ci(r["faithfulness"], r["faithfulness_low"], r["faithfulness_high"]),
            _ci(r["d_faithfulness"], r["d_faithfulness_low"], r["d_faithfulness_high"], signed=True),
            _pct(r["share_toxic"]),
            f"{r['entity_hallucination']:.2f}",
            f"{r['rouge1']:.3f} / {r['rouge2']:.3f} / {r['rougeL']:.3f}",
            f"{r['mean_words']:.1f}",
            verdict(r, reference),
        ]
        lines.append("| " + " | ".join(cells) + " |")
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
        "Definitions: aligntax/evaluate/patterns.py (patterns) and aligntax/evaluate/metrics.py "
        "(empty outputs score toxicity 0 and faithfulness 0 by rule; entity hallucination = share of "
        "summary entities absent from the post).",
        "",
    ]
    return "\n".join(lines)


# Label positions tried in order (offset in points, alignment), near to far: the first spot that
# covers no other label and no point wins, so the layout is deterministic and labels never overlap.
_SPOTS = [(dx * r, dy * r, ha, va) for r in (1, 2, 3.5)
          for dx, dy, ha, va in ((5, 5, "left", "bottom"), (5, -5, "left", "top"), (-5, 5, "right", "bottom"),
                                 (-5, -5, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top"),
                                 (8, 0, "left", "center"), (-8, 0, "right", "center"))]


def place_labels(ax: Axes, xs: list[float], ys: list[float], names: list[str], colors: list) -> list[Annotation]:
    """Annotate each point with its name at the first free spot of ``_SPOTS`` (a leader line when far)."""
    from matplotlib.transforms import Bbox

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
    """Scatter of mean toxicity (x) against mean faithfulness (y) with CIs, labelled, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
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
    plt.close(fig)

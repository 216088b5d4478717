"""The trade-off PNG: every method labelled, no two labels overlapping, the layout deterministic."""

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from aligntax.report import render  # noqa: E402
from aligntax.report.render import place_labels, tradeoff_png  # noqa: E402

# the crowded corner of the committed run (contrastive / instructive / unlikelihood / sentence_debias / sft)
POINTS = {"base": (0.128, 0.498), "sft": (0.185, 0.436), "contrastive": (0.125, 0.402), "cda": (0.216, 0.410),
          "dropout": (0.106, 0.477), "dpo": (0.088, 0.366), "unlikelihood": (0.132, 0.382), "inlp": (0.116, 0.317),
          "sentence_debias": (0.190, 0.394), "self_debias": (0.212, 0.350), "instructive": (0.094, 0.398),
          "twin_a": (0.150, 0.420), "twin_b": (0.151, 0.421)}


def _boxes(names):
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    xs, ys = zip(*(POINTS[n] for n in names), strict=True)
    ax.scatter(xs, ys)
    labels = place_labels(ax, list(xs), list(ys), list(names), ["k"] * len(names))
    renderer = fig.canvas.get_renderer()
    boxes = [lab.get_window_extent(renderer) for lab in labels]
    texts = [lab.get_text() for lab in labels]
    plt.close(fig)
    return texts, boxes


def _overlapping(texts, boxes):
    return [(texts[i], texts[j]) for i, j in itertools.combinations(range(len(boxes)), 2) if boxes[i].overlaps(boxes[j])]


def test_labels_never_overlap_and_stay_in_the_axes(monkeypatch):
    names = list(POINTS)
    texts, boxes = _boxes(names)
    assert texts == names
    assert _overlapping(texts, boxes) == []
    assert [b.bounds for b in _boxes(names)[1]] == [b.bounds for b in boxes]  # deterministic
    # the old layout (every label up-right of its point) overlaps on these points: the check can fail
    monkeypatch.setattr(render, "_SPOTS", [(5, 5, "left", "bottom")])
    assert ("twin_a", "twin_b") in _overlapping(*_boxes(names))


def test_tradeoff_png_writes_a_labelled_plot(tmp_path):
    rows = [{"method": n, "n": 24, "toxicity": x, "toxicity_low": x - 0.05, "toxicity_high": x + 0.05,
             "faithfulness": y, "faithfulness_low": y - 0.05, "faithfulness_high": y + 0.05}
            for n, (x, y) in POINTS.items()]
    out = tmp_path / "tradeoff.png"
    tradeoff_png(pd.DataFrame(rows), "sft", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000

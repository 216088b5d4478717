"""DVC stage `compare`: every method against the reference -> reports/comparison.md + tradeoff plot."""

import os

from aligntax import cli
from aligntax.config import from_dict, load_section, load_seed, read_params
from aligntax.evaluate.metrics import MetricsConfig
from aligntax.io import atomic_path, write_json
from aligntax.report.compare import CompareConfig, compare, key_metrics, load_inputs, load_methods, tradeoff_points
from aligntax.report.render import markdown, tradeoff_png


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--metrics-dir", default="metrics/evaluate", help="metrics/evaluate/<method>.json")
    p.add_argument("--eval-dir", default="data/eval", help="data/eval/<method>/scores.parquet")
    p.add_argument("--report", default="reports/comparison.md")
    p.add_argument("--png", default="reports/tradeoff.png")
    p.add_argument("--plot-data", default="metrics/tradeoff.json")
    p.add_argument("--metrics", default="metrics/compare.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "compare", CompareConfig)
    boot = from_dict(MetricsConfig, (params.get("evaluate") or {}).get("metrics") or {}, "evaluate.metrics")
    methods = list(load_methods(params))
    metrics, scores = load_inputs(methods, args.metrics_dir, args.eval_dir)
    table = compare(methods, metrics, scores, cfg, boot, load_seed(params))

    report = markdown(table, cfg.reference, boot.confidence, os.path.relpath(args.png, os.path.dirname(args.report) or "."))
    tradeoff_png(table, cfg.reference, args.png)
    with atomic_path(args.report) as tmp:
        tmp.write_text(report)
    write_json(tradeoff_points(table), args.plot_data)
    write_json(key_metrics(table), args.metrics)


if __name__ == "__main__":
    cli.run(main)

"""DVC stage `compare`: every method against the reference -> reports/comparison.md + tradeoff plot.

The report holds the generation metrics (Δ vs the reference with CIs and MDEs), the references'
likelihood, the likelihood preferences per negative kind and axis, the seeds' own rows and a header
naming the scorers and their validated ROC-AUCs. A method with extra training seeds (params.yaml
`seeds`) is read from each of its runs (data/eval/<method>-s<seed>/ ...) and reported as their mean.
"""

import os
from pathlib import Path

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--metrics-dir", default="metrics/evaluate", help="metrics/evaluate/<run>.json")
    p.add_argument("--eval-dir", default="data/eval", help="data/eval/<run>/{scores,preferences,likelihoods}.parquet")
    p.add_argument("--scorers-metrics", default=None, help="metrics/scorers.json (validate-scorers), for the header")
    p.add_argument("--report", default="reports/comparison.md", help="the comparison tables (markdown)")
    p.add_argument("--png", default="reports/tradeoff.png", help="the toxicity-faithfulness trade-off plot")
    p.add_argument("--plot-data", default="metrics/tradeoff.json", help="per-method points of the DVC scatter plot")
    p.add_argument("--metrics", default="metrics/compare.json", help="every delta, CI, MDE and verdict (JSON)")
    args = p.parse_args()

    # Heavy imports after parsing, so --help stays fast.
    from aligntax.config import from_dict, load_section, load_seed, read_params
    from aligntax.evaluate.metrics import MetricsConfig
    from aligntax.io import atomic_path, write_json
    from aligntax.methods import runs as method_runs
    from aligntax.report.compare import CompareConfig, adjust, compare, key_metrics, load_inputs, tradeoff_points
    from aligntax.report.preferences import likelihood_rows, preference_rows, seed_rows
    from aligntax.report.render import instruments, markdown, read_scorers, tradeoff_png
    from aligntax.scoring import ScoringConfig
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "compare", CompareConfig)
    boot = from_dict(MetricsConfig, (params.get("evaluate") or {}).get("metrics") or {}, "evaluate.metrics")
    scoring = load_section(params, "scoring", ScoringConfig)
    runs = method_runs(params)
    header = None
    if args.scorers_metrics:
        path = Path(args.scorers_metrics)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: scorer validation not found; run `dvc repro validate-scorers`")
        header = instruments(read_scorers(path), scoring.toxicity.backend, scoring.faithfulness.backend)
    with timer.phase("read"):
        metrics, scores, prefs, likes = load_inputs(runs, args.metrics_dir, args.eval_dir)
    seed = load_seed(params)
    with timer.phase("compare"):
        table = compare(runs, metrics, scores, cfg, boot, seed)
        pref_table = preference_rows(runs, metrics, prefs, cfg, boot, seed)
        like_table = likelihood_rows(runs, metrics, likes, cfg, boot, seed)
        per_seed = seed_rows(runs, scores, prefs, likes, pref_table, cfg)
        family = adjust({"table": table, "prefs": pref_table, "likelihood": like_table}, cfg.reference)

    with timer.phase("report"):
        report = markdown(table, cfg.reference, boot.confidence,
                          os.path.relpath(args.png, os.path.dirname(args.report) or "."), pref_table, header,
                          like_table, per_seed, family)
        tradeoff_png(table, cfg.reference, args.png)
        with atomic_path(args.report) as tmp:
            tmp.write_text(report)
        write_json(tradeoff_points(table), args.plot_data)
    write_json({**key_metrics(table, pref_table, like_table, per_seed), "tests": family, "seconds": timer.seconds()},
               args.metrics)


if __name__ == "__main__":
    cli.run(main)

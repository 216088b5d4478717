"""DVC stage `summarize`: the curated metrics (metrics/summary.json) that `dvc exp show` and `dvc metrics diff` read.

Per method: toxicity, faithfulness, their deltas vs compare.reference, any likelihood preferences
of its evaluate JSON and its training losses, rounded to summary.digits decimals.
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--compare", default="metrics/compare.json", help="metrics of the compare stage")
    p.add_argument("--evaluate-dir", default="metrics/evaluate", help="folder of the evaluate metrics, <method>.json")
    p.add_argument("--train-metrics", default="metrics/train_{method}.json",
                   help="training metrics of a method ({method} is replaced); methods without one are skipped")
    p.add_argument("--out", default="metrics/summary.json", help="the curated metrics file written")
    args = p.parse_args()

    from aligntax.config import load_section, read_params
    from aligntax.io import write_json
    from aligntax.report.summary import SummaryConfig, load_inputs, reference_and_methods, summarize

    params = read_params(args.params)
    cfg = load_section(params, "summary", SummaryConfig)
    reference, methods = reference_and_methods(params)
    compared, evaluated, trained = load_inputs(methods, args.compare, args.evaluate_dir, args.train_metrics)
    write_json(summarize(methods, compared, evaluated, trained, reference, cfg), args.out)


if __name__ == "__main__":
    cli.run(main)

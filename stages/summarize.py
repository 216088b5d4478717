"""DVC stage `summarize`: the curated metrics (metrics/summary.json) that `dvc exp show` and `dvc metrics diff` read,
and every trained method's loss curve in one table (metrics/train_curves.json) that `dvc plots` draws.

Per method: toxicity, faithfulness, their deltas vs compare.reference, any likelihood preferences
of its evaluate JSON and its training losses, rounded to summary.digits decimals.
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--compare", default="metrics/compare.json", help="metrics of the compare stage")
    p.add_argument("--evaluate-dir", default="metrics/evaluate", help="folder of the evaluate metrics, <method>.json")
    p.add_argument("--train-dir", default="metrics/train", help="folder of the training metrics, <method>.json")
    p.add_argument("--live-dir", default="dvclive", help="folder of the DVCLive curves, train_<method>/")
    p.add_argument("--out", default="metrics/summary.json", help="the curated metrics file written")
    p.add_argument("--curves", default="metrics/train_curves.json", help="the loss curves of every trained method")
    p.add_argument("--metrics", default="metrics/summarize.json", help="this stage's own run facts (seconds)")
    args = p.parse_args()

    from aligntax.config import load_section, read_params
    from aligntax.io import write_json
    from aligntax.methods import load_methods, trained_names
    from aligntax.report.summary import SummaryConfig, load_inputs, load_reference, summarize, training_curves
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "summary", SummaryConfig)
    methods, trained = list(load_methods(params)), trained_names(params)
    reference = load_reference(params, methods)
    with timer.phase("read"):
        compared, evaluated, train = load_inputs(methods, trained, args.compare, args.evaluate_dir, args.train_dir)
        curves = training_curves(args.live_dir, trained)
    write_json(summarize(methods, compared, evaluated, train, reference, cfg), args.out)
    write_json(curves, args.curves)
    write_json({"methods": len(methods), "trained": len(trained), "curve_points": len(curves),
                "seconds": timer.seconds()}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

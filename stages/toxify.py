"""DVC stage `toxify`: toxic rewrites of the reference summaries -> data/augment/toxic.parquet.

Resumable, and split across processes like backtranslate (`torchrun --nproc_per_node N -m stages.toxify`).
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--train", default="data/cased/train.parquet", help="the cased posts of one split (truecase)")
    p.add_argument("--base-model", default="models/base", help="base model (prepare-model)")
    p.add_argument("--scorers", default="models/scorers", help="fitted scorer artifacts (fit-scorers)")
    p.add_argument("--out", default="data/augment/train/toxic.parquet", help="toxic rewrites written")
    p.add_argument("--metrics", default="metrics/toxify/train.json", help="row counts written (kept, dropped, why)")
    p.add_argument("--work-dir", default="data/augment/.work", help="finished chunks of interrupted runs")
    args = p.parse_args()

    from aligntax.augment.toxify import ToxifyConfig, run_toxify
    from aligntax.config import load_section, load_seed, read_params
    from aligntax.io import write_json

    params = read_params(args.params)
    cfg = load_section(params, "toxify", ToxifyConfig)

    def toxicity():
        from aligntax.scoring import ScoringConfig, load_toxicity_scorer

        return load_toxicity_scorer(load_section(params, "scoring", ScoringConfig).toxicity,
                                    scorer_dir=args.scorers).score

    metrics = run_toxify(args.train, args.out, args.work_dir, cfg, args.base_model, toxicity, load_seed(params),
                         [params.get("scoring")],
                         input_dirs=[args.scorers])
    if metrics is not None:
        write_json(metrics, args.metrics)


if __name__ == "__main__":
    cli.run(main)

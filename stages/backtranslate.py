"""DVC stage `backtranslate`: faithful paraphrases of the reference summaries -> data/augment/paraphrases.parquet.

Resumable: a killed run re-run with the same inputs continues from its finished chunks. Split it
across processes with a launcher, e.g. `torchrun --nproc_per_node N -m stages.backtranslate` (or
`accelerate launch`): process K does every N-th chunk from K, process 0 merges and writes.
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--train", default="data/cased/train.parquet", help="the cased posts of one split (truecase)")
    p.add_argument("--base-model", default="models/base", help="the LM paraphraser (backtranslate.lm_model: base)")
    p.add_argument("--scorers", default="models/scorers", help="fitted scorer artifacts (fit-scorers)")
    p.add_argument("--out", default="data/augment/train/paraphrases.parquet", help="paraphrases written")
    p.add_argument("--metrics", default="metrics/backtranslate/train.json", help="row counts written (kept, dropped, why)")
    p.add_argument("--work-dir", default="data/augment/.work", help="finished chunks of interrupted runs")
    args = p.parse_args()

    from aligntax.augment.backtranslate import BacktranslateConfig, embedding_meaning, run_backtranslate
    from aligntax.augment.toxify import ToxifyConfig
    from aligntax.config import load_section, load_seed, read_params
    from aligntax.io import write_json
    from aligntax.ner import NerConfig, load_ner

    params = read_params(args.params)
    cfg = load_section(params, "backtranslate", BacktranslateConfig)
    ner_cfg = load_section(params, "ner", NerConfig)

    def meaning():
        if cfg.meaning_filter == "embedding":
            return embedding_meaning()
        from aligntax.scoring import ScoringConfig, load_faithfulness_scorer

        scorer = load_faithfulness_scorer(load_section(params, "scoring", ScoringConfig).faithfulness,
                                          scorer_dir=args.scorers, ner=load_ner(ner_cfg))
        return scorer.score

    def toxicity():
        from aligntax.scoring import ScoringConfig, load_toxicity_scorer

        return load_toxicity_scorer(load_section(params, "scoring", ScoringConfig).toxicity,
                                    scorer_dir=args.scorers).score

    metrics = run_backtranslate(args.train, args.out, args.work_dir, cfg, lambda: load_ner(ner_cfg),
                                None if cfg.meaning_filter == "none" else meaning, load_seed(params),
                                [ner_cfg, params.get("scoring")], args.base_model,
                                input_dirs=[args.scorers], toxicity_factory=toxicity,
                                max_reference_toxicity=load_section(params, "toxify", ToxifyConfig).max_reference_toxicity)
    if metrics is not None:
        write_json(metrics, args.metrics)


if __name__ == "__main__":
    cli.run(main)

"""DVC stage `entity-perturb`: entity negatives, entity spans and the filtered groups -> data/augment/train/groups.parquet.

Reads the train posts with the paraphrases and toxic rewrites written for them (same post order).
Resumable, and split across processes like backtranslate (`torchrun --nproc_per_node N -m stages.entity_perturb`).
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--train", default="data/cased/train.parquet", help="the cased posts of one split (truecase)")
    p.add_argument("--raw", default="data/raw/train.parquet",
                   help="the stored posts --train was cased from: the groups take their casing ('' = keep --train's)")
    p.add_argument("--paraphrases", default="data/augment/train/paraphrases.parquet", help="paraphrases (backtranslate)")
    p.add_argument("--toxic", default="data/augment/train/toxic.parquet", help="toxic rewrites (toxify)")
    p.add_argument("--base-model", default="models/base", help="base model (prepare-model)")
    p.add_argument("--scorers", default="models/scorers", help="fitted scorer artifacts (fit-scorers)")
    p.add_argument("--out", default="data/augment/train/groups.parquet", help="contrastive groups written")
    p.add_argument("--metrics", default="metrics/entity_perturb/train.json", help="row counts written (kept, dropped, why)")
    p.add_argument("--work-dir", default="data/augment/.work", help="finished chunks of interrupted runs")
    args = p.parse_args()

    from aligntax.augment.perturb import PerturbConfig, run_perturb
    from aligntax.augment.toxify import ToxifyConfig
    from aligntax.config import load_section, load_seed, read_params
    from aligntax.io import write_json
    from aligntax.models import ModelConfig
    from aligntax.ner import NerConfig, load_ner

    params = read_params(args.params)
    cfg = load_section(params, "entity_perturb", PerturbConfig)
    ner_cfg = load_section(params, "ner", NerConfig)
    template = load_section(params, "model", ModelConfig).prompt_template

    def toxicity():
        from aligntax.scoring import ScoringConfig, load_toxicity_scorer

        return load_toxicity_scorer(load_section(params, "scoring", ScoringConfig).toxicity,
                                    scorer_dir=args.scorers).score

    metrics = run_perturb(args.train, args.paraphrases, args.toxic, args.out, args.work_dir, cfg, args.base_model,
                          template, lambda: load_ner(ner_cfg), toxicity, load_seed(params),
                          [ner_cfg, params.get("scoring")], args.raw or None,
                          max_reference_toxicity=load_section(params, "toxify", ToxifyConfig).max_reference_toxicity,
                          input_dirs=[args.scorers])
    if metrics is not None:
        write_json(metrics, args.metrics)


if __name__ == "__main__":
    cli.run(main)

"""DVC stage `validate-scorers`: score the held-out labelled samples -> metrics/scorers.json."""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--toxicity", default="data/sample/toxicity_sample.jsonl", help="labelled toxicity sample (JSONL)")
    p.add_argument("--faithfulness", default="data/sample/faithfulness_sample.jsonl",
                   help="FRANK summaries with human consistency labels (JSONL)")
    p.add_argument("--tldr", default="data/sample/tldr_sample.jsonl", help="TL;DR posts and summaries (JSONL)")
    p.add_argument("--scorers", default="models/scorers", help="fit-scorers output (heads + split.json)")
    p.add_argument("--metrics", default="metrics/scorers.json", help="held-out validation results written")
    args = p.parse_args()

    from aligntax.config import load_section, load_seed, read_params
    from aligntax.io import write_json
    from aligntax.ner import NerConfig, load_ner
    from aligntax.scoring import ScoringConfig
    from aligntax.scoring.fit import read_jsonl, read_split
    from aligntax.scoring.validate import validate_scorers
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "scoring", ScoringConfig)
    with timer.phase("load"):
        ner = load_ner(load_section(params, "ner", NerConfig))
        split = read_split(args.scorers)
        samples = [read_jsonl(args.toxicity, "toxicity"), read_jsonl(args.faithfulness, "faithfulness"),
                   read_jsonl(args.tldr, "tldr")]
    with timer.phase("validate"):
        metrics = validate_scorers(cfg, args.scorers, ner, load_seed(params), *samples, split)
    write_json({**metrics, "seconds": timer.seconds()}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

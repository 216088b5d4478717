"""DVC stage `validate-scorers`: score the held-out labelled samples -> metrics/scorers.json."""

from aligntax import cli
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import write_json
from aligntax.ner import NerConfig, load_ner
from aligntax.scoring import ScoringConfig
from aligntax.scoring.fit import read_jsonl, read_split
from aligntax.scoring.validate import validate_scorers


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--toxicity", default="data/sample/toxicity_sample.jsonl")
    p.add_argument("--faithfulness", default="data/sample/faithfulness_sample.jsonl")
    p.add_argument("--tldr", default="data/sample/tldr_sample.jsonl")
    p.add_argument("--scorers", default="models/scorers", help="fit-scorers output (heads + split.json)")
    p.add_argument("--metrics", default="metrics/scorers.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "scoring", ScoringConfig)
    ner = load_ner(load_section(params, "ner", NerConfig))
    split = read_split(args.scorers)
    metrics = validate_scorers(cfg, args.scorers, ner, load_seed(params), read_jsonl(args.toxicity, "toxicity"),
                               read_jsonl(args.faithfulness, "faithfulness"), read_jsonl(args.tldr, "tldr"), split)
    write_json(metrics, args.metrics)


if __name__ == "__main__":
    cli.run(main)

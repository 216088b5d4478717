"""DVC stage `fit-scorers`: fit the offline scorer heads -> models/scorers/ + metrics/fit_scorers.json."""

from pathlib import Path

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--toxicity", default="data/sample/toxicity_sample.jsonl", help="labelled toxicity sample (JSONL)")
    p.add_argument("--faithfulness", default="data/sample/faithfulness_sample.jsonl",
                   help="FRANK summaries with human consistency labels (JSONL)")
    p.add_argument("--tldr", default="data/sample/tldr_sample.jsonl", help="TL;DR posts and summaries (JSONL)")
    p.add_argument("--out", default="models/scorers", help="folder the fitted scorer heads and split are written to")
    p.add_argument("--metrics", default="metrics/fit_scorers.json", help="fit results written (CV ROC-AUC, C)")
    args = p.parse_args()

    from aligntax.config import load_section, load_seed, read_params
    from aligntax.io import atomic_dir, write_json
    from aligntax.ner import NerConfig, load_ner
    from aligntax.scoring import ScoringConfig
    from aligntax.scoring.fit import fit_scorers, read_jsonl
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "scoring", ScoringConfig)
    with timer.phase("load"):
        ner = load_ner(load_section(params, "ner", NerConfig))
        tox = read_jsonl(args.toxicity, "toxicity")
        frank = read_jsonl(args.faithfulness, "faithfulness")
        tldr = read_jsonl(args.tldr, "tldr")
    with timer.phase("fit"), atomic_dir(args.out) as tmp:
        metrics = fit_scorers(cfg, ner, load_seed(params), tox, frank, tldr, Path(tmp))
    write_json({**metrics, "seconds": timer.seconds()}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

"""DVC stage `download`: TL;DR posts -> data/raw/{train,eval}.parquet + metrics/download.json."""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--sample", default="data/sample/tldr_sample.jsonl", help="committed sample (data.source: sample)")
    p.add_argument("--train-out", default="data/raw/train.parquet", help="train posts written")
    p.add_argument("--eval-out", default="data/raw/eval.parquet", help="eval posts written")
    p.add_argument("--metrics", default="metrics/download.json", help="row counts written (kept, dropped, why)")
    args = p.parse_args()

    from aligntax.config import load_section, load_seed, read_params
    from aligntax.data.download import DataConfig, download
    from aligntax.io import write_json, write_parquet
    from aligntax.schema import RAW
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "data", DataConfig)
    with timer.phase("download"):
        train, evals, metrics = download(cfg, load_seed(params), args.sample)
    with timer.phase("write"):
        write_parquet(train, args.train_out, RAW)
        write_parquet(evals, args.eval_out, RAW)
    write_json({**metrics, "seconds": timer.seconds()}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

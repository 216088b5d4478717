"""DVC stage `truecase`: data/raw/{train,eval}.parquet -> data/cased/{train,eval}.parquet + metrics/truecase.json.

The raw files stay what the user gave; the cased copies feed NER and the augmentation stages.
"""

import dataclasses
import logging

from aligntax import cli
from aligntax.config import load_section, read_params
from aligntax.data.casing import TruecaseConfig, load_caser, truecase_frame
from aligntax.io import read_parquet, write_json, write_parquet
from aligntax.ner import NerConfig, load_ner
from aligntax.schema import CASED, RAW
from aligntax.timing import Timer

log = logging.getLogger("truecase")
RAW_ANY_TEXT = dataclasses.replace(RAW, required_text=("id",))
"""Empty posts or summaries are passed through and counted, not fatal."""


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--train", default="data/raw/train.parquet", help="raw train split (left as it is)")
    p.add_argument("--eval", default="data/raw/eval.parquet", help="raw eval split (left as it is)")
    p.add_argument("--train-out", default="data/cased/train.parquet", help="output: cased train split")
    p.add_argument("--eval-out", default="data/cased/eval.parquet", help="output: cased eval split")
    p.add_argument("--metrics", default="metrics/truecase.json", help="output: tokens changed, entities before/after")
    args = p.parse_args()
    timer = Timer()
    params = read_params(args.params)
    cfg = load_section(params, "truecase", TruecaseConfig)
    splits = {"train": read_parquet(args.train, RAW_ANY_TEXT), "eval": read_parquet(args.eval, RAW_ANY_TEXT)}
    with timer.phase("load"):
        ner = load_ner(load_section(params, "ner", NerConfig))
        caser = load_caser(cfg) if cfg.enabled else None
    metrics, cased = {}, {}  # both splits are read and cased before either is written: a bad input costs no output
    with timer.phase("case"):
        for split, frame in splits.items():
            cased[split], metrics[split] = truecase_frame(frame, cfg, caser, ner)
    with timer.phase("write"):
        for split, dst in (("train", args.train_out), ("eval", args.eval_out)):
            write_parquet(cased[split], dst, CASED)
            log.info("%s: %d rows cased -> %s", split, len(cased[split]), dst)
    metrics["seconds"] = timer.seconds()
    write_json(metrics, args.metrics)


if __name__ == "__main__":
    cli.run(main)

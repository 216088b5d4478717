"""DVC stage `fit-sentence-debias`: the SentenceDebias projection fitted on the `sft` model's hidden states.

Writes models/sentence_debias/: the `sft` model with the projection folded into its LM head (evaluated like
any model folder) plus projection.safetensors; and metrics/fit_sentence_debias.json (held-out probe accuracy
before/after, per axis).
"""

import time

from aligntax import cli
from aligntax.baselines.projection import save_projected_model
from aligntax.baselines.sentence_debias import SentenceDebiasConfig, fit_sentence_debias
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import load_model, load_tokenizer
from aligntax.schema import RAW


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--model", default="models/sft", help="the model the projection is applied to")
    p.add_argument("--train", default="data/raw/train.parquet", help="posts that supply corpus contexts")
    p.add_argument("--out", default="models/sentence_debias")
    p.add_argument("--metrics", default="metrics/fit_sentence_debias.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "sentence_debias", SentenceDebiasConfig)
    raw = read_parquet(args.train, RAW)
    start = time.perf_counter()
    tokenizer, model = load_tokenizer(args.model), load_model(args.model, dtype="float32")
    texts = [f"{post}\n{summary}" for post, summary in zip(raw["post"], raw["summary"], strict=True)]
    projection, metrics = fit_sentence_debias(model, tokenizer, texts, cfg, load_seed(params))
    save_projected_model(model, tokenizer, projection, args.out, "sentence_debias")
    metrics["rows"] = {"posts_read": len(raw)}
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    write_json({"method": "sentence_debias", "model": args.model, **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

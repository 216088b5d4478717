"""DVC stage `fit-projection@<method>`: a debiasing projection (inlp or sentence_debias) fitted on `sft`.

Writes models/<method>/: the `sft` model with the projection folded into its LM head (evaluated
like any model folder) plus projection.safetensors; and metrics/fit_<method>.json (held-out probe
accuracy before/after, per axis).
"""

import importlib
import time

from aligntax import cli
from aligntax.config import load_section, load_seed, read_params

FITTED = {
    "inlp": ("aligntax.baselines.inlp", "InlpConfig", "fit_inlp"),
    "sentence_debias": ("aligntax.baselines.sentence_debias", "SentenceDebiasConfig", "fit_sentence_debias"),
}
"""Method (= its params section) -> (module, config dataclass, fit function)."""


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, choices=sorted(FITTED), help="which projection baseline to fit")
    p.add_argument("--model", default="models/sft", help="the model the projection is applied to")
    p.add_argument("--train", default="data/raw/train.parquet", help="posts that supply corpus contexts")
    p.add_argument("--out", help="model folder (default: models/<method>)")
    p.add_argument("--metrics", help="metrics JSON (default: metrics/fit_<method>.json)")
    args = p.parse_args()
    from aligntax.baselines.projection import save_projected_model
    from aligntax.io import read_parquet, write_json
    from aligntax.models import load_model, load_tokenizer
    from aligntax.schema import RAW

    module_name, config_name, fit_name = FITTED[args.method]
    module = importlib.import_module(module_name)
    params = read_params(args.params)
    cfg = load_section(params, args.method, getattr(module, config_name))
    raw = read_parquet(args.train, RAW)
    start = time.perf_counter()
    tokenizer, model = load_tokenizer(args.model), load_model(args.model, dtype="float32")
    texts = [f"{post}\n{summary}" for post, summary in zip(raw["post"], raw["summary"], strict=True)]
    projection, metrics = getattr(module, fit_name)(model, tokenizer, texts, cfg, load_seed(params))
    save_projected_model(model, tokenizer, projection, args.out or f"models/{args.method}", args.method)
    metrics["rows"] = {"posts_read": len(raw)}
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    write_json({"method": args.method, "model": args.model, **metrics},
               args.metrics or f"metrics/fit_{args.method}.json")


if __name__ == "__main__":
    cli.run(main)

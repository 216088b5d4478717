"""DVC stage `fit-projection@<method>`: a debiasing projection fitted on another model's hidden states.

The method is an entry under `fitted:` in params.yaml (its module: CONFIG and fit). Writes
models/<method>/: the model with the projection folded into its LM head (evaluated like any model
folder) plus projection.safetensors; and metrics/fit_<method>.json (held-out probe accuracy
before/after, per axis).
"""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, help="a method name under `fitted:` in params.yaml")
    p.add_argument("--model", help="the model the projection is fitted on (default: its `fitted:` entry's model)")
    p.add_argument("--train", default="data/raw/train.parquet", help="posts that supply corpus contexts")
    p.add_argument("--out", help="model folder (default: models/<method>)")
    p.add_argument("--metrics", help="metrics JSON (default: metrics/fit_<method>.json)")
    args = p.parse_args()
    from aligntax.baselines.projection import save_projected_model
    from aligntax.config import load_seed, read_params
    from aligntax.io import read_parquet, write_json
    from aligntax.methods import entry_of, import_method, method_config
    from aligntax.models import load_model, load_tokenizer
    from aligntax.schema import RAW
    from aligntax.timing import Timer

    timer = Timer()
    params = read_params(args.params)
    entry = entry_of(params, "fitted", args.method)
    module = import_method("fitted", args.method, entry)
    cfg = method_config(params, module, entry.section)
    model_dir = args.model or entry.model
    raw = read_parquet(args.train, RAW)
    with timer.phase("load"):
        tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, dtype="float32")
    texts = [f"{post}\n{summary}" for post, summary in zip(raw["post"], raw["summary"], strict=True)]
    with timer.phase("fit"):
        projection, metrics = module.fit(model, tokenizer, texts, cfg, load_seed(params))
    with timer.phase("save"):
        save_projected_model(model, tokenizer, projection, args.out or f"models/{args.method}", args.method)
    metrics["rows"] = {"posts_read": len(raw)}
    metrics["seconds"] = timer.seconds()
    write_json({"method": args.method, "model": model_dir, **metrics}, args.metrics or f"metrics/fit_{args.method}.json")


if __name__ == "__main__":
    cli.run(main)

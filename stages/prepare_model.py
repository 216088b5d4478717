"""DVC stage `prepare-model`: the base model as a safetensors checkpoint in models/base/."""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", default="models/base", help="folder the safetensors model and tokenizer are written to")
    p.add_argument("--metrics", default="metrics/prepare_model.json", help="model facts written (architecture, size)")
    args = p.parse_args()

    from aligntax.config import load_section, read_params
    from aligntax.io import write_json
    from aligntax.models import ModelConfig, prepare_base_model
    from aligntax.timing import Timer

    timer = Timer()
    cfg = load_section(read_params(args.params), "model", ModelConfig)
    with timer.phase("prepare"):
        facts = prepare_base_model(cfg, args.out)
    write_json({**facts, "seconds": timer.seconds()}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

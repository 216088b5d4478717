"""DVC stage `train-sft`: CE fine-tuning on the reference summaries -> models/sft + metrics/train_sft.json."""

from aligntax import cli
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import ModelConfig
from aligntax.schema import RAW
from aligntax.train.sft import run_sft
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--out", default="models/sft")
    p.add_argument("--metrics", default="metrics/train_sft.json")
    p.add_argument("--live-dir", default="dvclive/train_sft", help="DVCLive training curves")
    p.add_argument("--checkpoints", default="checkpoints/train_sft", help="checkpoint folder (train.save_steps)")
    args = p.parse_args()
    params = read_params(args.params)
    train_cfg = load_section(params, "train", TrainConfig)
    model_cfg = load_section(params, "model", ModelConfig)
    raw = read_parquet(args.train, RAW)
    metrics = run_sft(args.base, raw[["post", "summary"]], train_cfg, model_cfg, args.out, load_seed(params),
                      checkpoint_dir=args.checkpoints, live_dir=args.live_dir)
    write_json({"method": "sft", **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

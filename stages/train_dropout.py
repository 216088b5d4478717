"""DVC stage `train-dropout`: SFT with increased dropout -> models/dropout + metrics/train_dropout.json."""

from aligntax import cli
from aligntax.baselines.dropout import DropoutConfig, run_dropout
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import ModelConfig
from aligntax.schema import RAW
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--out", default="models/dropout")
    p.add_argument("--metrics", default="metrics/train_dropout.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "dropout", DropoutConfig)
    train_cfg = load_section(params, "train", TrainConfig)
    model_cfg = load_section(params, "model", ModelConfig)
    raw = read_parquet(args.train, RAW)
    metrics = run_dropout(args.base, raw, cfg, train_cfg, model_cfg, args.out, load_seed(params))
    write_json({"method": "dropout", **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

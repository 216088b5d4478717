"""DVC stage `train-cda`: counterfactual data augmentation, then SFT -> models/cda + metrics/train_cda.json."""

from aligntax import cli
from aligntax.baselines.cda import CdaConfig, run_cda
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import ModelConfig
from aligntax.schema import RAW
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--out", default="models/cda")
    p.add_argument("--metrics", default="metrics/train_cda.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "cda", CdaConfig)
    train_cfg = load_section(params, "train", TrainConfig)
    model_cfg = load_section(params, "model", ModelConfig)
    raw = read_parquet(args.train, RAW)
    metrics = run_cda(args.base, raw, cfg, train_cfg, model_cfg, args.out, load_seed(params))
    write_json({"method": "cda", **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

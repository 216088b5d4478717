"""DVC stage `train-dpo`: DPO (trl) of references over negatives -> models/dpo + metrics/train_dpo.json."""

from aligntax import cli
from aligntax.baselines.dpo import DpoConfig, run_dpo
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import ModelConfig
from aligntax.schema import GROUPS, RAW
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--groups", default="data/augment/groups.parquet", help="entity-perturb output")
    p.add_argument("--out", default="models/dpo")
    p.add_argument("--metrics", default="metrics/train_dpo.json")
    args = p.parse_args()
    params = read_params(args.params)
    cfg = load_section(params, "dpo", DpoConfig)
    train_cfg = load_section(params, "train", TrainConfig)
    model_cfg = load_section(params, "model", ModelConfig)
    raw = read_parquet(args.train, RAW)
    groups = read_parquet(args.groups, GROUPS)
    metrics = run_dpo(args.base, raw, groups, cfg, train_cfg, model_cfg, args.out, load_seed(params))
    write_json({"method": "dpo", **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

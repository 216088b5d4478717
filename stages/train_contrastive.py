"""DVC stage `train-contrastive`: CE + alpha * w * InfoNCE -> models/contrastive + metrics/train_contrastive.json."""

from aligntax import cli
from aligntax.config import load_section, load_seed, read_params
from aligntax.io import read_parquet, write_json
from aligntax.models import ModelConfig
from aligntax.schema import GROUPS, RAW
from aligntax.train.contrastive import run_contrastive
from aligntax.train.loss import LossConfig
from aligntax.train.trainer import TrainConfig


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--groups", default="data/augment/groups.parquet")
    p.add_argument("--out", default="models/contrastive")
    p.add_argument("--metrics", default="metrics/train_contrastive.json")
    p.add_argument("--live-dir", default="dvclive/train_contrastive", help="DVCLive training curves")
    p.add_argument("--checkpoints", default="checkpoints/train_contrastive", help="checkpoint folder")
    args = p.parse_args()
    params = read_params(args.params)
    train_cfg = load_section(params, "train", TrainConfig)
    loss_cfg = load_section(params, "loss", LossConfig)
    model_cfg = load_section(params, "model", ModelConfig)
    raw = read_parquet(args.train, RAW)
    groups = read_parquet(args.groups, GROUPS)
    metrics = run_contrastive(args.base, raw, groups, train_cfg, loss_cfg, model_cfg, args.out, load_seed(params),
                              checkpoint_dir=args.checkpoints, live_dir=args.live_dir)
    write_json({"method": "contrastive", **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

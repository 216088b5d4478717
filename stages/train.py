"""DVC stage `train@<method>`: train one method listed under `trained:` in params.yaml.

Reads models/base and the train posts (plus data/augment/train/groups.parquet for the methods that
learn from negatives); writes models/<method>, metrics/train/<method>.json and DVCLive curves.
The training itself is aligntax.train.core.train_method; the method's module holds what differs.
`train-seed@<method>-<seed>` runs it with `--seed` and its own output paths (an extra training seed).

Runs unchanged under a multi-process launcher (params.yaml `launcher`, e.g. `torchrun
--nproc_per_node 2 -m stages.train ...`): only the main process writes the model, curves and metrics.
"""

import signal
import sys

from aligntax import cli
from aligntax.config import METHOD_NAME, ConfigError, check, from_dict, load_section, load_seed, read_params


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, help="a method name under `trained:` in params.yaml")
    p.add_argument("--base", default="models/base", help="base model folder (prepare-model)")
    p.add_argument("--train", default="data/raw/train.parquet", help="train posts (the first data.n_train are used)")
    p.add_argument("--groups", default="data/augment/train/groups.parquet",
                   help="entity-perturb output; read only by methods that learn from negatives")
    p.add_argument("--out", help="model folder (default: models/<method>)")
    p.add_argument("--metrics", help="metrics JSON (default: metrics/train/<method>.json)")
    p.add_argument("--live-dir", help="DVCLive training curves (default: dvclive/train_<method>)")
    p.add_argument("--checkpoints", help="checkpoint folder, train.save_steps (default: checkpoints/train_<method>)")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed of an extra run (params.yaml `seeds.extra`); default train.seed, else `seed`")
    args = p.parse_args()
    # A launcher stops the other processes with SIGTERM when one fails: exit through Python, so the
    # staged DVCLive folder and half-saved checkpoints are removed (core.train_method) and no partial output stays.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from aligntax.io import read_parquet, write_json
    from aligntax.methods import TrainedMethod, load_method
    from aligntax.models import ModelConfig
    from aligntax.schema import GROUPS, RAW
    from aligntax.train.core import TrainInputs, train_method
    from aligntax.train.trainer import TrainConfig

    params = read_params(args.params)
    trained = params.get("trained") or {}
    if args.method not in trained:
        raise ConfigError(f"params.yaml: no method '{args.method}' under 'trained' (have: {', '.join(trained)})")
    check(METHOD_NAME.match(args.method) is not None, f"trained.{args.method}",
          "a name of lower-case letters, digits, '_' or '-'")
    entry = from_dict(TrainedMethod, trained[args.method], f"trained.{args.method}")
    method = load_method(entry, args.method)
    cfg = load_section(params, entry.section, method.CONFIG) if method.CONFIG is not None else None
    train_cfg = load_section(params, "train", TrainConfig)
    seed = load_seed(params) if train_cfg.seed is None else train_cfg.seed
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed {args.seed}: use an integer >= 0 (params.yaml `seeds.extra`)")
        seed = args.seed
    inputs = TrainInputs(
        base_dir=args.base, raw=read_parquet(args.train, RAW), train=train_cfg,
        model=load_section(params, "model", ModelConfig),
        seed=seed,
        out_dir=args.out or f"models/{args.method}",
        groups=read_parquet(args.groups, GROUPS) if method.NEEDS_GROUPS else None,
        checkpoint_dir=args.checkpoints or f"checkpoints/train_{args.method}",
        live_dir=args.live_dir or f"dvclive/train_{args.method}",
    )
    metrics = train_method(method, cfg, inputs)
    if metrics is not None:  # None on the processes other than the main one: they write nothing
        write_json({"method": args.method, **metrics}, args.metrics or f"metrics/train/{args.method}.json")


if __name__ == "__main__":
    cli.run(main)

"""Start a stage script with no params.yaml value in the shell command DVC runs.

DVC substitutes `${...}` into a stage's `cmd` and runs the result through a shell, so a params
value written there (a launcher, a method name, a model folder) could run as shell code. The
commands of dvc.yaml therefore hold only literal text and values of dvc.yaml itself:

    python -m stages.launch [--launcher] -m stages.<stage> ARGS...

- `{name}` in ARGS is the item of a `foreach` stage (`sft` of `train@sft`), taken from the stage
  name DVC passes in $DVC_STAGE (or `--name` when run by hand) and checked as a method name;
- `{method}` and `{seed}` are the two parts of the item of a matrix stage over a method and a
  training seed (`sft` and `1` of `train-seed@sft-1`, DVC joining them with '-');
- `--launcher` starts the stage through params.yaml `launcher` (python | accelerate launch
  --config_file configs/accelerate/<name>.yaml | torchrun --nproc_per_node N), checked and split
  into arguments here; without it the stage runs under this Python.

The stage then replaces this process (exec: no shell, same signals), its stdin closed so that
nothing (e.g. a library asking "run custom code? [y/N]") can wait for an answer. Under plain python
it runs instead, where one is up, in a fork of a warm server that has already imported torch,
transformers and the other heavy libraries (aligntax/warm.py: same outputs, ~5 s less a stage);
`ALIGNTAX_WARM=off` starts every stage cold.
"""

import os
import re
import sys

from aligntax import cli

PLACEHOLDER = "{name}"
MATRIX_PLACEHOLDERS = ("{method}", "{seed}")
MATRIX_ITEM = re.compile(r"(?P<method>.+)-(?P<seed>[0-9]{1,9})")
STAGE_MODULE = re.compile(r"stages\.[a-z_]+")


def stage_item(name: str | None) -> str:
    """The item name `{name}` stands for: ``name``, else the part after '@' of $DVC_STAGE, checked."""
    from aligntax.config import METHOD_NAME, ConfigError

    if name is None:
        stage = os.environ.get("DVC_STAGE", "").rsplit(":", 1)[-1]
        if "@" not in stage:
            raise ConfigError("stages.launch: '{name}' in the arguments needs a foreach stage (DVC sets DVC_STAGE, "
                              "e.g. train@sft) or --name NAME")
        name = stage.split("@", 1)[1]
    if METHOD_NAME.fullmatch(name) is None:
        raise ConfigError(f"params.yaml: bad value for stage item {name[:60]!r}; allowed: a name of lower-case "
                          "letters, digits, '_' or '-' (a key of methods/trained/fitted/decoding)")
    return name


def fill(args: list[str], name: str | None) -> list[str]:
    """``args`` with `{name}`, or `{method}` and `{seed}` of a matrix item `<method>-<seed>`, filled in."""
    if not any(p in a for a in args for p in (PLACEHOLDER, *MATRIX_PLACEHOLDERS)):
        return args
    item = stage_item(name)
    args = [a.replace(PLACEHOLDER, item) for a in args]
    if any(p in a for a in args for p in MATRIX_PLACEHOLDERS):
        from aligntax.config import ConfigError

        match = MATRIX_ITEM.fullmatch(item)
        if match is None:
            raise ConfigError(f"stages.launch: '{{method}}'/'{{seed}}' need a matrix stage item <method>-<seed> "
                              f"(e.g. train-seed@sft-1), not {item!r}")
        args = [a.replace("{method}", match["method"]).replace("{seed}", match["seed"]) for a in args]
    return args


def main() -> None:
    argv = sys.argv[1:]
    if "-m" not in argv:
        argv.append("--help")  # usage: the module is required
    split = argv.index("-m") if "-m" in argv else len(argv)
    p = cli.parser(__doc__)
    p.add_argument("--launcher", action="store_true", help="start the stage through params.yaml `launcher`")
    p.add_argument("--name", default=None, help="what {name} stands for (default: the item of $DVC_STAGE)")
    args = p.parse_args(argv[:split])
    module, rest = (argv[split + 1], argv[split + 2:]) if split + 1 < len(argv) else ("", [])
    from aligntax.config import ConfigError, check_launcher, read_params

    if STAGE_MODULE.fullmatch(module) is None or not os.path.isfile(module.replace(".", "/") + ".py"):
        raise ConfigError(f"stages.launch: '-m {module[:60]}' is not a stage script (stages/<stage>.py)")
    rest = fill(rest, args.name)
    start = check_launcher(read_params(args.params)) if args.launcher else ["python"]
    command = [sys.executable if start[0] == "python" else start[0], *start[1:], "-m", module, *rest]
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()
    sys.stderr.flush()
    if start == ["python"]:
        from aligntax import warm

        code = warm.run(module, rest)
        if code is not None:
            sys.exit(code)
    os.execvp(command[0], command)


if __name__ == "__main__":
    cli.run(main)

"""Merge params profiles (partial params.yaml files) into params.yaml, keeping its comments.

    python scripts/apply_profile.py configs/profiles/paper.yaml            # edits params.yaml
    python scripts/apply_profile.py configs/profiles/paper.yaml extra.yaml --params other/params.yaml

Profiles apply in order. Mappings merge key by key, any other value (lists too) replaces the old
one. Every key of a profile must already exist in params.yaml, so a typo fails here, naming the
key, and nothing is written; check-params validates the values when the pipeline runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ruamel.yaml import YAML  # dvc's YAML library: it round-trips params.yaml with its comments
from ruamel.yaml.comments import CommentedSeq


def merge(target, profile, where: str = "") -> list[str]:
    """Merge mapping ``profile`` into ``target`` in place; returns the dotted keys that changed."""
    changed = []
    for key, value in profile.items():
        dotted = f"{where}{key}"
        if key not in target:
            raise KeyError(f"'{dotted}' is not a params.yaml key; check its spelling against params.yaml")
        if isinstance(value, dict) and isinstance(target[key], dict):
            changed += merge(target[key], value, f"{dotted}.")
        elif target[key] != value:
            if isinstance(value, list):  # written inline, as params.yaml writes its short lists
                value = CommentedSeq(value)
                value.fa.set_flow_style()
            target[key] = value
            changed.append(dotted)
    return changed


def apply(params_path: Path, profiles: list[Path]) -> list[str]:
    """Apply ``profiles`` to ``params_path`` (written only if every key is known); the changed keys."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    params = yaml.load(params_path.read_text())
    changed = []
    for path in profiles:
        profile = YAML(typ="safe").load(path.read_text()) or {}
        try:
            changed += merge(params, profile)
        except KeyError as err:
            raise SystemExit(f"error: {path}: {err.args[0]}") from None
    tmp = params_path.with_name(f".{params_path.name}.tmp")
    with tmp.open("w") as fh:
        yaml.dump(params, fh)
    tmp.replace(params_path)
    return changed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profiles", nargs="+", type=Path, help="profile files, applied in order")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file edited in place")
    args = p.parse_args()
    changed = apply(args.params, args.profiles)
    print(f"{args.params}: {len(changed)} value(s) changed: {', '.join(changed) or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()

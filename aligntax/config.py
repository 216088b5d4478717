"""params.yaml sections <-> config dataclasses, validated strictly.

Each section of params.yaml maps 1:1 onto a dataclass that lives next to the code that uses it
(``DataConfig`` in ``aligntax/data/download.py`` and so on). ``load_section`` turns the
section into that dataclass and rejects unknown keys, wrong types and values outside a
``Literal``; dataclasses add range checks in ``__post_init__`` through ``check``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")

log = logging.getLogger(__name__)


METHOD_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
"""A method name (params.yaml `methods:` / `trained:` keys, stage names `evaluate@<name>`)."""


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown or out of range."""


def check(condition: bool, key: str, allowed: str) -> None:
    """Raise a ConfigError naming ``key`` and what it accepts unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"params.yaml: bad value for '{key}'; allowed: {allowed}")


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml as a dict, with one clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return params


def load_seed(params: dict[str, Any]) -> int:
    """The global ``seed`` every stage derives its randomness from."""
    seed = params.get("seed")
    check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", "an integer >= 0")
    return seed


def load_section(params: dict[str, Any] | str | Path, section: str, cls: type[T]) -> T:
    """Build ``cls`` from ``params[section]`` (params may be the dict or the file path)."""
    if not isinstance(params, dict):
        params = read_params(params)
    if section not in params:
        # The dataclass defaults equal the shipped params.yaml (tests/test_config.py), so this
        # runs the documented default, but never silently.
        log.warning("params.yaml has no '%s' section: using the shipped defaults of %s", section, cls.__name__)
    data = params.get(section) or {}
    return from_dict(cls, data, section)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Strictly convert a mapping to dataclass ``cls``; ``where`` is the dotted key for errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"params.yaml: '{where}' must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key '{where}.{unknown[0]}'; allowed keys in '{where}': "
            + ", ".join(fields)
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"params.yaml: missing key '{key}'")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        check(value in allowed, key, " | ".join(map(str, allowed)))
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"params.yaml: bad value for '{key}'")
    if origin is list:
        (item,) = get_args(tp)
        check(isinstance(value, list), key, f"a list of {getattr(item, '__name__', item)}")
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        check(isinstance(value, dict), key, "a mapping")
        return {_coerce(key_tp, k, key): _coerce(val_tp, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        check(isinstance(value, bool), key, "true | false")
        return value
    if tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), key, "an integer")
        return value
    if tp is float:
        check(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number")
        check(math.isfinite(value), key, "a finite number (not .inf or .nan)")
        return float(value)
    if tp is str:
        check(isinstance(value, str), key, "a string")
        return value
    raise TypeError(f"unsupported config type {tp!r} for '{key}'")

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


METHOD_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]*\Z")
"""A method name (params.yaml `methods:` / `trained:` keys, stage names `evaluate@<name>`)."""
PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
"""The characters of a path from params.yaml (a model folder, a module, a data file): no space, quote,
`;`, `&`, `$`, backtick or line break, so no value can mean anything to a shell."""
LAUNCHERS = re.compile(r"python|accelerate launch --config_file configs/accelerate/[A-Za-z0-9_.-]+\.yaml"
                       r"|torchrun --nproc_per_node [1-9][0-9]{0,2}")
"""The forms of params.yaml `launcher`, which starts the heavy stages (stages/launch.py)."""
MAX_SEED = 2**32 - 1
"""numpy, scikit-learn and CUDA seeds are 32-bit: a larger seed passes YAML and fails in a stage."""
MAX_DEPTH = 32
"""Deepest nesting params.yaml may have (its sections nest 3 levels); deeper is an error, not a RecursionError."""


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown or out of range."""


def printable(text: str, limit: int = 80) -> str:
    """``text`` on one line for a message: control characters escaped (a line break as \\n), cut to ``limit``."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def check(condition: bool, key: str, allowed: str) -> None:
    """Raise a ConfigError naming ``key`` and what it accepts unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"params.yaml: bad value for '{printable(key)}'; allowed: {allowed}")


def shown(value: Any) -> str:
    """A short description of a bad value for a message: `'high' (a string)`, `[] (a list)`."""
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
             dict: "a mapping", type(None): "null"}
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"


def check_value(condition: bool, key: str, allowed: str, value: Any) -> None:
    """``check``, naming the value that was given: a type error reads `allowed: a number; got 'high' (a string)`."""
    if not condition:
        raise ConfigError(f"params.yaml: bad value for '{printable(key)}'; allowed: {allowed}; got {shown(value)}")


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml as a dict, with one clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; params.yaml sections nest at most "
                          f"{MAX_DEPTH} levels") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    where = _too_deep(params, MAX_DEPTH)
    if where is not None:
        raise ConfigError(f"params.yaml: bad value for '{printable(where)}'; allowed: at most {MAX_DEPTH} levels of nesting")
    return params


def _too_deep(value: Any, depth: int, where: str = "") -> str | None:
    """The dotted key where ``value`` nests deeper than ``depth`` levels, or None."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        at = f"{where}[{key}]" if isinstance(value, list) else f"{where}.{key}" if where else str(key)
        if depth <= 0:
            return at
        found = _too_deep(child, depth - 1, at)
        if found is not None:
            return found
    return None


def load_seed(params: dict[str, Any]) -> int:
    """The global ``seed`` every stage derives its randomness from."""
    seed = params.get("seed")
    check_value(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED, "seed",
                f"an integer >= 0 and < 2**32 ({MAX_SEED + 1})", seed)
    return seed


def check_launcher(params: dict[str, Any]) -> list[str]:
    """`launcher`: python, accelerate launch with a shipped config, or torchrun with a process count; as argv."""
    value = params.get("launcher", "python")
    check_value(isinstance(value, str) and LAUNCHERS.fullmatch(value) is not None, "launcher",
                "'python', 'accelerate launch --config_file configs/accelerate/<name>.yaml' or "
                "'torchrun --nproc_per_node N'", value)
    if value.startswith("accelerate"):
        config = value.rsplit(" ", 1)[-1]
        check(Path(config).is_file(), "launcher", f"a config that exists ({config} does not; see configs/accelerate/)")
    return value.split(" ")


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
        raise ConfigError(f"params.yaml: bad value for '{printable(where)}'; allowed: a mapping of its keys "
                          f"({', '.join(f.name for f in dataclasses.fields(cls))}); got {shown(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key '{printable(f'{where}.{unknown[0]}')}'; allowed keys in '{where}': "
            + ", ".join(fields)
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"params.yaml: missing key '{printable(key)}'")
    return cls(**kwargs)


_NAMES = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        check_value(value in allowed, key, " | ".join(map(str, allowed)), value)
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
        if len(errors) == 1:
            raise ConfigError(errors[0])
        kinds = " or ".join("null" if a is type(None) else _NAMES.get(a, str(a)).removesuffix("s") for a in args)
        raise ConfigError(f"params.yaml: bad value for '{printable(key)}'; allowed: {kinds}; got {shown(value)}")
    if origin is list:
        (item,) = get_args(tp)
        what = " | ".join(map(str, get_args(item))) if get_origin(item) is Literal else \
            _NAMES.get(item, getattr(item, "__name__", item))
        check_value(isinstance(value, list), key, f"a list of {what}", value)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        check_value(isinstance(value, dict), key, "a mapping", value)
        return {_coerce(key_tp, k, key): _coerce(val_tp, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        check_value(isinstance(value, bool), key, "true | false", value)
        return value
    if tp is int:
        check_value(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if tp is float:
        # a quoted number ("0.5") is a string in YAML: refused like any text, with the value shown
        check_value(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number", value)
        check(math.isfinite(value), key, "a finite number (not .inf or .nan)")
        return float(value)
    if tp is str:
        check_value(isinstance(value, str), key, "a string", value)
        return value
    raise TypeError(f"unsupported config type {tp!r} for '{key}'")

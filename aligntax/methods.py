"""The method registry: for each method of params.yaml, what it is, where its code lives, its section.

params.yaml holds one declarative list per kind, because DVC's ``foreach`` iterates a mapping
as it stands (it cannot filter or merge one):

    trained:  <name>: {module, section, data}   stage train@<name>; module: CONFIG, NEEDS_GROUPS, prepare()
    fitted:   <name>: {module, section, model}  stage fit-projection@<name>, fitted on `model`; module: CONFIG, fit()
    decoding: <name>: {module, section}         decoding-time, on the folder under `methods:`; module: CONFIG, decoding()
    methods:  <name>: <model folder>            stage evaluate@<name>; compare and summary, in this order

A name under ``methods:`` in none of the three kind lists is evaluated as its folder stands
(kind ``base``: the base model zero-shot).

    seeds:    {methods: [<trained name>...], extra: [<seed>...]}
              stages train-seed@<name>-<seed> and evaluate-seed@<name>-<seed> (a DVC matrix): run
              <name>-s<seed>, trained like train@<name> with training seed <seed> into
              models/<name>-s<seed>; train@<name> itself is the method's first seed (``runs``).

This module reads and checks those lists and imports a method's module by its path, checking its
contract. It is the one Python module that knows which methods exist: check-params, training,
fitting, compare, summary and the plots all ask it.

Adding a trained method = its module + its params section + its line under ``trained:`` (+ a line
under ``methods:`` to evaluate and compare it); tests/train/test_recipe.py does exactly that.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, Literal

from aligntax.config import (
    MAX_SEED,
    METHOD_NAME,
    PATH,
    ConfigError,
    check,
    check_value,
    from_dict,
    load_section,
    load_seed,
    printable,
)

Kind = Literal["base", "trained", "fitted", "decoding"]
SEEDS = "seeds"
"""Top-level params key of the extra training seeds."""


@dataclass
class TrainedMethod:
    module: str
    """Path of the method's module, e.g. aligntax/baselines/cda.py (a DVC dependency of its stage)."""
    section: str
    """params.yaml section holding its settings (`train` when it has none of its own)."""
    data: str
    """What it learns from: data/raw/train.parquet, or data/augment/train/groups.parquet (built from it)."""


@dataclass
class FittedMethod:
    module: str
    """Path of the method's module, e.g. aligntax/baselines/inlp.py."""
    section: str
    """params.yaml section holding its settings."""
    model: str
    """The model folder it is fitted on and saved on top of (its stage's dependency)."""


@dataclass
class DecodingMethod:
    module: str
    """Path of the method's module, e.g. aligntax/baselines/instructive.py."""
    section: str
    """params.yaml section holding its settings."""


ENTRIES: dict[str, type] = {"trained": TrainedMethod, "fitted": FittedMethod, "decoding": DecodingMethod}
"""Kind list of params.yaml -> the dataclass of one of its entries."""
CONTRACT: dict[str, tuple[str, ...]] = {
    "trained": ("CONFIG", "NEEDS_GROUPS", "prepare"),
    "fitted": ("CONFIG", "fit"),
    "decoding": ("CONFIG", "decoding"),
}
"""What a method module of each kind defines (CONFIG: its section's dataclass, None if it reads none)."""
EXAMPLES = {"trained": "aligntax/baselines/cda.py", "fitted": "aligntax/baselines/inlp.py",
            "decoding": "aligntax/baselines/instructive.py"}
GROUPS_FILE = "groups.parquet"
"""File name of the groups artifact (entity-perturb), what a method with NEEDS_GROUPS learns from."""


@dataclass(frozen=True)
class Method:
    """One method of params.yaml, as every consumer sees it."""

    name: str
    kind: Kind
    folder: str | None
    """The model folder evaluate@<name> reads (`methods:`), None when it is not evaluated."""
    entry: TrainedMethod | FittedMethod | DecodingMethod | None
    """Its kind list entry (module, section ...), None for kind base."""


@dataclass
class SeedsConfig:
    methods: list[str]
    """Trained methods (each also under `methods:`) trained and evaluated once more per extra seed."""
    extra: list[int]
    """Their extra training seeds; a method's own run (train@<name>) has train.seed, else `seed`."""


@dataclass(frozen=True)
class Run:
    """One trained (or evaluated) model of a method: its name under data/eval/ and metrics/evaluate/."""

    name: str
    seed: int | None
    """Its training seed; None for a method that is not trained (base, fitted, decoding-time)."""


def run_name(method: str, seed: int) -> str:
    """The run of ``method`` with extra training seed ``seed``: models/<method>-s<seed>, data/eval/<method>-s<seed>."""
    return f"{method}-s{seed}"


def check_inside(key: str, value: Any, example: str) -> None:
    """A path from params must be a relative path that stays inside the repository, in plain characters."""
    check_value(isinstance(value, str) and value.strip() != "", key,
                f"a relative path inside the repository, e.g. {example}", value)
    path = PurePosixPath(value)
    check(not path.is_absolute() and ".." not in path.parts and "\\" not in value, key,
          f"a relative path inside the repository, e.g. {example} (no '..', not absolute)")
    check_value(PATH.fullmatch(value) is not None, key, f"a relative path of letters, digits and '_', '.', '-', '/' "
                f"only, e.g. {example} (no space, quote, ';', '&', '$', backtick or line break)", value)


def _check_name(key: str, name: Any) -> None:
    check_value(isinstance(name, str) and METHOD_NAME.fullmatch(name) is not None, key,
                "a name of lower-case letters, digits, '_' or '-'", name)


def load_methods(params: dict[str, Any]) -> dict[str, str]:
    """The top-level ``methods`` mapping: method name -> model folder, in report order."""
    methods = params.get("methods")
    check(isinstance(methods, dict) and len(methods) > 0, "methods", "a mapping of method name -> model folder")
    for name, folder in methods.items():
        _check_name(f"methods.{name}", name)
        check_inside(f"methods.{name}", folder, "models/sft")
    return dict(methods)


def load_kind(params: dict[str, Any], kind: str) -> dict[str, Any]:
    """One kind list (``trained``, ``fitted`` or ``decoding``): name -> its checked entry."""
    cls = ENTRIES[kind]
    fields = ", ".join(f for f in cls.__dataclass_fields__)
    entries = params.get(kind)
    check(isinstance(entries, dict), kind, f"a mapping of method name -> {{{fields}}}")
    out = {}
    for name, raw in entries.items():
        key = f"{kind}.{name}"
        _check_name(key, name)
        entry = from_dict(cls, raw, key)
        check_inside(f"{key}.module", entry.module, EXAMPLES[kind])
        check(entry.module.startswith("aligntax/") and entry.module.endswith(".py"), f"{key}.module",
              f"a .py file under aligntax/, e.g. {EXAMPLES[kind]}")
        check_value(METHOD_NAME.fullmatch(entry.section) is not None, f"{key}.section", "a params section, e.g. train",
                    entry.section)
        for extra in ("data", "model"):
            if hasattr(entry, extra):
                check_inside(f"{key}.{extra}", getattr(entry, extra), "data/raw/train.parquet" if extra == "data"
                             else "models/sft")
        out[name] = entry
    return out


def registry(params: dict[str, Any]) -> dict[str, Method]:
    """Every method of params.yaml by name, kind lists first, then the evaluated-only ones (kind base)."""
    methods = load_methods(params)
    out: dict[str, Method] = {}
    for kind in ENTRIES:
        for name, entry in load_kind(params, kind).items():
            if name in out:
                raise ConfigError(f"params.yaml: bad value for '{kind}.{printable(name)}'; allowed: a name in one list only "
                                  f"('{name}' is also under '{out[name].kind}')")
            out[name] = Method(name, kind, methods.get(name), entry)
    for name, folder in methods.items():
        if name not in out:
            out[name] = Method(name, "base", folder, None)
    load_seeds(params)
    return out


def first_seed(params: dict[str, Any]) -> int:
    """The training seed of each train@<method>: ``train.seed``, else the global ``seed``."""
    train_seed = (params.get("train") or {}).get("seed")
    return load_seed(params) if train_seed is None else train_seed


def load_seeds(params: dict[str, Any]) -> SeedsConfig:
    """The ``seeds`` list, checked: trained and evaluated methods, new distinct seeds, free run names
    (no ``seeds`` key: no extra runs)."""
    if SEEDS not in params:
        return SeedsConfig(methods=[], extra=[])
    cfg = from_dict(SeedsConfig, params[SEEDS], SEEDS)
    trained, evaluated = load_kind(params, "trained"), load_methods(params)
    for i, name in enumerate(cfg.methods):
        check(name in trained and name in evaluated, f"{SEEDS}.methods[{i}]",
              f"a method under both 'trained' and 'methods' ({', '.join(m for m in trained if m in evaluated)})")
    check(len(set(cfg.methods)) == len(cfg.methods), f"{SEEDS}.methods", "each method once")
    first = first_seed(params)
    for i, seed in enumerate(cfg.extra):
        check_value(0 <= seed <= MAX_SEED and seed != first, f"{SEEDS}.extra[{i}]",
                    f"an integer >= 0 and < 2**32 other than {first}, the seed of train@<method> (train.seed, else seed)",
                    seed)
    check(len(set(cfg.extra)) == len(cfg.extra), f"{SEEDS}.extra", "each seed once")
    names = {run_name(m, s) for m in cfg.methods for s in cfg.extra}
    taken = sorted(names & (set(evaluated) | set(trained)))
    check(not taken, f"{SEEDS}.extra", f"seeds whose run names are free ({', '.join(taken)} is a method name)")
    return cfg


def runs(params: dict[str, Any]) -> dict[str, list[Run]]:
    """Every evaluated method (``methods:`` order) -> its runs: its own first, then one per extra seed."""
    seeds, trained = load_seeds(params), load_kind(params, "trained") if "trained" in params else {}
    first = first_seed(params)
    out = {}
    for name in load_methods(params):
        extra = [Run(run_name(name, s), s) for s in seeds.extra] if name in seeds.methods else []
        out[name] = [Run(name, first if name in trained else None), *extra]
    return out


def import_method(kind: str, name: str, entry: Any) -> ModuleType:
    """Import the module of a ``kind`` entry by its path (e.g. aligntax/train/sft.py) and check its contract."""
    path = Path(entry.module)
    if path.suffix != ".py" or path.is_absolute() or ".." in path.parts:
        raise ConfigError(f"params.yaml: '{kind}.{printable(name)}.module' must be a relative path to a .py file, "
                          f"got {printable(str(path))}")
    try:
        module = importlib.import_module(".".join(path.with_suffix("").parts))
    except ModuleNotFoundError as err:
        raise ConfigError(f"params.yaml: '{kind}.{name}.module' = {path} cannot be imported ({err}); "
                          "give the path of an existing module from the repository root") from None
    missing = [a for a in CONTRACT[kind] if not hasattr(module, a)]
    if missing or not callable(getattr(module, CONTRACT[kind][-1])):
        raise ConfigError(f"{path}: a {kind} method module defines {', '.join(CONTRACT[kind])}; "
                          f"it lacks {', '.join(missing) or CONTRACT[kind][-1] + ' as a function'} (see aligntax/methods.py)")
    return module


def load_method(entry: TrainedMethod, name: str) -> ModuleType:
    """The module of trained method ``name`` (its CONFIG, NEEDS_GROUPS and prepare), checked."""
    module = import_method("trained", name, entry)
    if not isinstance(module.NEEDS_GROUPS, bool):
        raise ConfigError(f"{entry.module}: NEEDS_GROUPS must be True or False")
    return module


def method_config(params: dict[str, Any], module: ModuleType, section: str) -> Any:
    """The method's settings: its ``section`` as ``module.CONFIG`` (None when the module has no CONFIG)."""
    return load_section(params, section, module.CONFIG) if module.CONFIG is not None else None


def entry_of(params: dict[str, Any], kind: str, name: str) -> Any:
    """The entry of ``name`` under ``kind``, or one error naming the list and what it holds."""
    entries = load_kind(params, kind)
    if name not in entries:
        raise ConfigError(f"params.yaml: no method '{printable(name)}' under '{kind}' "
                          f"(have: {', '.join(entries) or 'none'})")
    return entries[name]


def section_classes(params: dict[str, Any]) -> dict[str, type]:
    """params section -> its dataclass, for every method whose module has a CONFIG (imports each module)."""
    out: dict[str, type] = {}
    owner: dict[str, str] = {}
    for name, method in registry(params).items():
        if method.entry is None:
            continue
        module = (load_method(method.entry, name) if method.kind == "trained"
                  else import_method(method.kind, name, method.entry))
        if method.kind == "trained" and module.NEEDS_GROUPS and Path(method.entry.data).name != GROUPS_FILE:
            raise ConfigError(f"params.yaml: bad value for 'trained.{name}.data'; allowed: the groups artifact "
                              "data/augment/train/groups.parquet (its module learns from negatives: NEEDS_GROUPS)")
        if module.CONFIG is None:
            continue
        section = method.entry.section
        if out.get(section, module.CONFIG) is not module.CONFIG:
            raise ConfigError(f"params.yaml: bad value for '{method.kind}.{name}.section'; allowed: a section of its "
                              f"own ('{section}' is read as {out[section].__name__} by '{owner[section]}')")
        out[section], owner[section] = module.CONFIG, name
    return out


def trained_names(params: dict[str, Any]) -> list[str]:
    """Names under ``trained:``, in order (each has a train@<name> stage and its metrics and curves)."""
    return list(load_kind(params, "trained"))


def load_decoding(params: dict[str, Any], name: str) -> tuple[ModuleType, Any] | None:
    """A decoding-time method's module and settings; None for a method whose change lives in its weights
    (or when params has no `decoding:` list at all, e.g. a stage run on a minimal params file)."""
    if params.get("decoding") is None:
        return None
    entries = load_kind(params, "decoding")
    if name not in entries:
        return None
    module = import_method("decoding", name, entries[name])
    return module, method_config(params, module, entries[name].section)

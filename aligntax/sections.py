"""Every params.yaml section and the dataclass it maps onto, checked all at once.

The `check-params` stage runs ``check_params`` before any other stage: DVC deletes a stage's
outputs just before running it, so a bad value must fail here, while every output is still in
place. Each stage still loads (and re-checks) the sections it reads.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache

from aligntax.augment.backtranslate import BacktranslateConfig
from aligntax.augment.perturb import PerturbConfig
from aligntax.augment.toxify import ToxifyConfig
from aligntax.config import ConfigError, check, load_section, load_seed
from aligntax.data.casing import TruecaseConfig
from aligntax.data.download import DataConfig
from aligntax.evaluate.run import EvaluateConfig
from aligntax.methods import ENTRIES, SEEDS, registry, section_classes
from aligntax.models import PACKAGED, ModelConfig
from aligntax.ner import NerConfig
from aligntax.report.compare import CompareConfig
from aligntax.report.summary import SummaryConfig
from aligntax.scoring import ScoringConfig
from aligntax.train.trainer import TrainConfig

SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "truecase": TruecaseConfig,
    "model": ModelConfig,
    "ner": NerConfig,
    "scoring": ScoringConfig,
    "train": TrainConfig,
    "backtranslate": BacktranslateConfig,
    "toxify": ToxifyConfig,
    "entity_perturb": PerturbConfig,
    "evaluate": EvaluateConfig,
    "compare": CompareConfig,
    "summary": SummaryConfig,
}
"""Stage section -> config dataclass. A method's section maps onto its module's CONFIG (the registry,
aligntax/methods.py); `seed`, `launcher`, the method lists and `seeds` are checked on their own."""
TOP_LEVEL = ("seed", "launcher", "methods", *ENTRIES, SEEDS)
"""Top-level keys that are not sections."""


def all_sections(params: dict[str, Any]) -> dict[str, type]:
    """Every section of ``params`` -> its dataclass: the stage sections and the methods' sections."""
    methods = section_classes(params)
    for section, cls in methods.items():
        if section in SECTIONS and SECTIONS[section] is not cls:
            raise ConfigError(f"params.yaml: bad value for section '{section}'; allowed: a method section other than "
                              f"the stage sections ({', '.join(SECTIONS)})")
    return SECTIONS | methods


LAUNCHERS = re.compile(r"python|accelerate launch --config_file configs/accelerate/[\w.-]+\.yaml"
                       r"|torchrun --nproc_per_node [1-9]\d*")
"""The forms of params.yaml `launcher` (the start of every train@<method> command in dvc.yaml)."""


def check_launcher(params: dict[str, Any]) -> None:
    """`launcher`: python, accelerate launch with a shipped config, or torchrun with a process count."""
    value = params.get("launcher", "python")
    check(isinstance(value, str) and LAUNCHERS.fullmatch(value) is not None, "launcher",
          "'python', 'accelerate launch --config_file configs/accelerate/<name>.yaml' or "
          "'torchrun --nproc_per_node N'")
    if value.startswith("accelerate"):
        config = value.rsplit(" ", 1)[-1]
        check(Path(config).is_file(), "launcher", f"a config that exists ({config} does not; see configs/accelerate/)")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Load every section strictly; returns the loaded configs by section (raises ConfigError)."""
    load_seed(params)
    check_launcher(params)
    methods = registry(params)
    sections = all_sections(params)
    for name, method in methods.items():  # a method's own section must be there: the recipe adds it
        if method.entry is not None:
            check(method.entry.section in SECTIONS or method.entry.section in params, f"{method.kind}.{name}.section",
                  f"a params section, e.g. {'train' if method.kind == 'trained' else name}")
    unknown = sorted(set(params) - set(sections) - set(TOP_LEVEL))
    check(not unknown, unknown[0] if unknown else "",
          f"a known section: {', '.join([*TOP_LEVEL, *sections])} (a method's section only while the method is listed)")
    loaded = {name: load_section(params, name, cls) for name, cls in sections.items()}
    reference = loaded["compare"].reference
    evaluated = list(params["methods"])  # checked by the registry; in report order
    check(reference in evaluated, "compare.reference", f"one of the methods: {', '.join(evaluated)}")
    check_hub(loaded)
    return loaded


def hub_ids(loaded: dict[str, Any]) -> list[tuple[str, str]]:
    """(params key, repo id) of every model or dataset the configuration would fetch from the Hub."""
    ids = [("model.name", loaded["model"].name)]
    if loaded["data"].source.startswith("hf:"):
        ids.append(("data.source", loaded["data"].source.removeprefix("hf:")))
    tox, faith = loaded["scoring"].toxicity, loaded["scoring"].faithfulness
    if tox.backend.startswith("hf:"):
        ids.append(("scoring.toxicity.backend", tox.backend.removeprefix("hf:")))
    if faith.backend == "summac-zs":
        ids.append(("scoring.faithfulness.nli_model", faith.nli_model.removeprefix("hf:")))
    if "lm" in loaded["toxify"].strategies and loaded["toxify"].lm_model != "base":
        ids.append(("toxify.lm_model", loaded["toxify"].lm_model))
    bt = loaded["backtranslate"]
    if bt.engine == "marian":
        for pivot in bt.pivots:
            ids += [("backtranslate.marian_model", bt.marian_model.format(src=a, tgt=b))
                    for a, b in (("en", pivot), (pivot, "en"))]
    if loaded["ner"].backend == "flair":
        ids.append(("ner.model", loaded["ner"].model))
    return [(key, repo) for key, repo in ids
            if repo != PACKAGED and not Path(repo).exists() and try_to_load_from_cache(repo, "config.json") is None]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers a TCP connection (honours HF_HUB_OFFLINE and HF_ENDPOINT)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def check_hub(loaded: dict[str, Any]) -> None:
    """Fail at once, naming the key, when a hub id is needed and the Hub cannot be reached.

    Without this, transformers and datasets retry for up to a minute per file before failing,
    after DVC has already deleted the stage's previous outputs.
    """
    needed = hub_ids(loaded)
    if needed and not hub_reachable():
        key, repo = needed[0]
        raise ConfigError(
            f"params.yaml: '{key}' = '{repo}' needs the Hugging Face Hub, which is unreachable from here "
            f"(and it is not in the local cache){f'; {len(needed) - 1} more id(s) too' if len(needed) > 1 else ''}. "
            f"Use the packaged offline defaults (model.name: {PACKAGED}, data.source: sample, ...) or a local folder, "
            "or run where the Hub is reachable"
        )

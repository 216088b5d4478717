"""Every params.yaml section and the dataclass it maps onto, checked all at once.

The `check-params` stage runs ``check_params`` before any other stage: DVC deletes a stage's
outputs just before running it, so a bad value must fail here, while every output is still in
place. Each stage still loads (and re-checks) the sections it reads.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache

from aligntax.augment.backtranslate import BacktranslateConfig
from aligntax.augment.perturb import PerturbConfig
from aligntax.augment.toxify import ToxifyConfig
from aligntax.baselines.cda import CdaConfig
from aligntax.baselines.dpo import DpoConfig
from aligntax.baselines.dropout import DropoutConfig
from aligntax.baselines.inlp import InlpConfig
from aligntax.baselines.instructive import InstructiveConfig
from aligntax.baselines.self_debias import SelfDebiasConfig
from aligntax.baselines.sentence_debias import SentenceDebiasConfig
from aligntax.baselines.unlikelihood import UnlikelihoodConfig
from aligntax.config import METHOD_NAME, ConfigError, check, from_dict, load_section, load_seed
from aligntax.data.casing import TruecaseConfig
from aligntax.data.download import DataConfig
from aligntax.evaluate.run import EvaluateConfig
from aligntax.models import PACKAGED, ModelConfig
from aligntax.ner import NerConfig
from aligntax.report.compare import CompareConfig, load_methods
from aligntax.report.summary import SummaryConfig
from aligntax.scoring import ScoringConfig
from aligntax.train.core import TrainedMethod
from aligntax.train.loss import LossConfig
from aligntax.train.trainer import TrainConfig

SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "truecase": TruecaseConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "ner": NerConfig,
    "scoring": ScoringConfig,
    "train": TrainConfig,
    "backtranslate": BacktranslateConfig,
    "toxify": ToxifyConfig,
    "entity_perturb": PerturbConfig,
    "evaluate": EvaluateConfig,
    "compare": CompareConfig,
    "summary": SummaryConfig,
    "cda": CdaConfig,
    "dropout": DropoutConfig,
    "dpo": DpoConfig,
    "unlikelihood": UnlikelihoodConfig,
    "inlp": InlpConfig,
    "sentence_debias": SentenceDebiasConfig,
    "self_debias": SelfDebiasConfig,
    "instructive": InstructiveConfig,
}
"""Section name -> config dataclass; `seed`, `methods` and `trained` are checked on their own."""


def check_inside(key: str, value: str, example: str) -> None:
    """A path from params must be relative and stay inside the repository."""
    path = PurePosixPath(value)
    check(not path.is_absolute() and ".." not in path.parts and "\\" not in value, key,
          f"a relative path inside the repository, e.g. {example} (no '..', not absolute)")


def check_trained(params: dict[str, Any]) -> None:
    """The `trained:` list: each entry a method module under aligntax/, a known section, a data file."""
    trained = params.get("trained")
    check(isinstance(trained, dict) and len(trained) > 0, "trained",
          "a mapping of method name -> {module, section, data}")
    for name, entry in trained.items():
        check(isinstance(name, str) and METHOD_NAME.match(name) is not None, f"trained.{name}",
              "a name of lower-case letters, digits, '_' or '-'")
        method = from_dict(TrainedMethod, entry, f"trained.{name}")
        check_inside(f"trained.{name}.module", method.module, "aligntax/train/sft.py")
        check(method.module.startswith("aligntax/") and method.module.endswith(".py"), f"trained.{name}.module",
              "a .py file under aligntax/, e.g. aligntax/baselines/cda.py")
        check(method.section in SECTIONS, f"trained.{name}.section", "a params section, e.g. train")
        check_inside(f"trained.{name}.data", method.data, "data/raw/train.parquet")


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
    unknown = sorted(set(params) - set(SECTIONS) - {"seed", "launcher", "methods", "trained"})
    check(not unknown, unknown[0] if unknown else "",
          "a known section: seed, launcher, methods, trained, " + ", ".join(SECTIONS))
    load_seed(params)
    check_launcher(params)
    methods = load_methods(params)
    for name, folder in methods.items():
        check_inside(f"methods.{name}", folder, "models/sft")
    check_trained(params)
    loaded = {name: load_section(params, name, cls) for name, cls in SECTIONS.items()}
    reference = loaded["compare"].reference
    check(reference in methods, "compare.reference", f"one of the methods: {', '.join(methods)}")
    check_hub(loaded)
    return loaded


def hub_ids(loaded: dict[str, Any]) -> list[tuple[str, str]]:
    """(params key, repo id) of every model or dataset the configuration would fetch from the Hub."""
    ids = [("model.name", loaded["model"].name, "model")]
    if loaded["data"].source.startswith("hf:"):
        ids.append(("data.source", loaded["data"].source.removeprefix("hf:"), "dataset"))
    tox, faith = loaded["scoring"].toxicity, loaded["scoring"].faithfulness
    if tox.backend.startswith("hf:"):
        ids.append(("scoring.toxicity.backend", tox.backend.removeprefix("hf:"), "model"))
    if faith.backend == "summac-zs":
        ids.append(("scoring.faithfulness.nli_model", faith.nli_model.removeprefix("hf:"), "model"))
    if "lm" in loaded["toxify"].strategies and loaded["toxify"].lm_model != "base":
        ids.append(("toxify.lm_model", loaded["toxify"].lm_model, "model"))
    bt = loaded["backtranslate"]
    if bt.engine == "marian":
        for pivot in bt.pivots:
            ids += [("backtranslate.marian_model", bt.marian_model.format(src=a, tgt=b), "model")
                    for a, b in (("en", pivot), (pivot, "en"))]
    if loaded["ner"].backend == "flair":
        ids.append(("ner.model", loaded["ner"].model, "flair"))
    return [(key, repo) for key, repo, kind in ids
            if repo != PACKAGED and not Path(repo).exists() and not in_local_cache(repo, kind)]


def in_local_cache(repo: str, kind: str) -> bool:
    """Whether the library that loads ``repo`` finds it with the Hub offline: a model in the HF hub cache;
    a dataset in the `datasets` cache of prepared datasets (all that `load_dataset` reads offline); a
    flair tagger in flair's own hub cache (``$FLAIR_CACHE_ROOT``, default ~/.flair)."""
    if kind == "dataset":
        from datasets.load import CachedDatasetModuleFactory

        try:
            CachedDatasetModuleFactory(repo).get_module()
        except (FileNotFoundError, AssertionError):
            return False
        return True
    if kind == "flair":
        root = Path(os.environ.get("FLAIR_CACHE_ROOT", Path.home() / ".flair"))
        folder = root / "models" / repo.split("/", 1)[-1]
        return try_to_load_from_cache(repo, "pytorch_model.bin", cache_dir=folder) is not None
    return try_to_load_from_cache(repo, "config.json") is not None


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

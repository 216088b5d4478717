from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pytest

from aligntax.config import ConfigError, check, from_dict, load_section, load_seed, read_params
from aligntax.data.download import DataConfig
from aligntax.models import ModelConfig
from aligntax.ner import NerConfig
from aligntax.train.loss import LossConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    k: int = 1
    """an int."""


@dataclass
class Demo:
    mode: Literal["a", "b"] = "a"
    """a mode."""
    rate: float = 0.5
    """a rate."""
    names: list[str] | None = None
    """names."""
    inner: Inner | None = None
    """nested."""

    def __post_init__(self):
        check(0 <= self.rate <= 1, "demo.rate", "a number in [0, 1]")


def test_valid_section_builds_dataclass_with_coercion():
    cfg = from_dict(Demo, {"mode": "b", "rate": 1, "names": ["x"], "inner": {"k": 3}}, "demo")
    assert cfg == Demo(mode="b", rate=1.0, names=["x"], inner=Inner(3))
    assert isinstance(cfg.rate, float)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"moed": "a"}, "unknown key 'demo.moed'; allowed keys in 'demo': mode, rate, names, inner"),
        ({"mode": "c"}, "bad value for 'demo.mode'; allowed: a | b"),
        ({"rate": "high"}, "bad value for 'demo.rate'; allowed: a number"),
        ({"rate": 2}, "bad value for 'demo.rate'; allowed: a number in [0, 1]"),
        ({"rate": True}, "bad value for 'demo.rate'; allowed: a number"),
        ({"names": "x"}, "bad value for 'demo.names'"),
        ({"inner": {"j": 1}}, "unknown key 'demo.inner.j'"),
    ],
)
def test_bad_values_name_the_key_and_allowed_values(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("|", r"\|")):
        from_dict(Demo, data, "demo")


def test_repository_params_load_into_their_dataclasses():
    params = read_params(ROOT / "params.yaml")
    assert load_seed(params) == params["seed"]
    for section, cls in [("data", DataConfig), ("model", ModelConfig), ("ner", NerConfig), ("loss", LossConfig)]:
        cfg = load_section(params, section, cls)
        assert set(params[section]) <= {f.name for f in fields(cls)}
        assert type(cfg) is cls


def test_loss_scale_dynamic_is_valid_and_unknown_scale_is_not():
    assert load_section({"loss": {"scale": "dynamic"}}, "loss", LossConfig).scale == "dynamic"
    with pytest.raises(ConfigError, match="loss.scale'; allowed: none | static | dynamic".replace("|", r"\|")):
        load_section({"loss": {"scale": "dinamic"}}, "loss", LossConfig)


def test_missing_params_file_and_bad_seed(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        read_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("seed: -1\n")
    with pytest.raises(ConfigError, match="'seed'; allowed: an integer >= 0"):
        load_seed(read_params(tmp_path / "p.yaml"))
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_params(tmp_path / "bad.yaml")


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_floats_are_rejected_with_the_key(value):
    with pytest.raises(ConfigError, match=r"'loss.alpha'; allowed: a finite number"):
        load_section({"loss": {"alpha": value}}, "loss", LossConfig)


def test_yaml_inf_is_rejected_and_a_missing_section_is_logged(tmp_path, caplog):
    (tmp_path / "p.yaml").write_text("seed: 0\nloss:\n  alpha: .inf\n")
    with pytest.raises(ConfigError, match="loss.alpha"):
        load_section(tmp_path / "p.yaml", "loss", LossConfig)
    with caplog.at_level("WARNING"):
        cfg = load_section({"seed": 0}, "loss", LossConfig)
    assert cfg == LossConfig()
    assert "no 'loss' section" in caplog.text


def test_every_params_section_equals_its_dataclass_defaults():
    """One home for each default: the shipped params.yaml is exactly the dataclass defaults."""
    from aligntax.sections import TOP_LEVEL, all_sections

    params = read_params(ROOT / "params.yaml")
    sections = all_sections(params)  # the stage sections and, through the registry, each method's
    assert set(params) == set(sections) | set(TOP_LEVEL)
    for section, cls in sections.items():
        assert load_section(params, section, cls) == cls(), f"params.yaml '{section}' differs from {cls.__name__}()"

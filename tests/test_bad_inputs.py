"""The bad-input corpus: every case ends in its expected one-line message (tests/bad_inputs/)."""

import copy
from pathlib import Path

import pytest
import yaml

from aligntax.config import ConfigError, read_params
from aligntax.sections import check_params

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "bad_inputs"


def _params_cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in (CASES / "params.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value, expected = line.split("\t")
            rows.append((key, value, expected))
    return rows


def _set(params: dict, key: str, value) -> None:
    if key.startswith(("methods.", "trained.", "fitted.", "decoding.")):
        section, name = key.split(".", 1)
        params[section][name] = value
        return
    *path, last = key.split(".")
    for part in path:
        params = params[part]
    params[last] = value


@pytest.mark.parametrize("key, value, expected", _params_cases(), ids=lambda x: str(x)[:40])
def test_bad_param_ends_in_its_message(key, value, expected):
    params = copy.deepcopy(read_params(ROOT / "params.yaml"))
    _set(params, key, yaml.safe_load(value))
    with pytest.raises(ConfigError) as err:
        check_params(params)
    message = str(err.value)
    assert message.startswith("params.yaml: bad value for ") and expected in message
    assert "\n" not in message


def test_the_corpus_is_large_and_unique():
    cases = _params_cases()
    assert len(cases) >= 40
    assert len({(k, v) for k, v, _ in cases}) == len(cases)

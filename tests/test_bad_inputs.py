"""The bad-params corpus (tests/bad_inputs/params.tsv): every case ends the check-params stage in one message.

Each case writes the shipped params.yaml with one value changed into a workspace that holds the
previous outputs (the stamp every stage depends on and a stand-in output), runs the stage's entry
point (``cli.run`` of stages/check_params.py, what `dvc repro` runs before any other stage) and
checks: exit 1, one ``error: params.yaml: ...`` line naming the key with the expected fragment, no
traceback, and every file of the workspace byte-for-byte unchanged.
"""

import copy
import hashlib
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from aligntax import cli
from aligntax.config import ConfigError, read_params
from aligntax.sections import check_params
from stages import check_params as check_params_stage

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "bad_inputs"
OUTPUTS = ("data/params.ok", "models/sft/model.safetensors")


def expand(value):
    """YAML flow values with two macros: {repeat: TEXT, times: N} -> TEXT * N, {nest: N} -> N nested lists."""
    if isinstance(value, dict) and set(value) == {"repeat", "times"}:
        return str(value["repeat"]) * int(value["times"])
    if isinstance(value, dict) and set(value) == {"nest"}:
        out: list = []
        for _ in range(int(value["nest"])):
            out = [out]
        return out
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def params_cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in (CASES / "params.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value, expected = line.split("\t")
            rows.append((key, value, expected))
    return rows


def set_value(params: dict, key: str, value) -> None:
    """Set dotted ``key``; under methods/trained/fitted/decoding the rest of the key is one name."""
    if key.startswith(("methods.", "trained.", "fitted.", "decoding.")):
        section, name = key.split(".", 1)
        params[section][name] = value
        return
    *path, last = key.split(".")
    for part in path:
        params = params[part]
    params[last] = value


def bad_params(key: str, value: str) -> dict:
    params = copy.deepcopy(read_params(ROOT / "params.yaml"))
    set_value(params, key, expand(yaml.safe_load(value)))
    return params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("params")
    for out in OUTPUTS:
        (ws / out).parent.mkdir(parents=True, exist_ok=True)
        (ws / out).write_bytes(f"previous {out}\n".encode())
    (ws / "configs").symlink_to(ROOT / "configs")  # `launcher` names a config under configs/accelerate/
    return ws


def md5s(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "params.yaml"}


def run_check_params(ws: Path, params: dict, monkeypatch, capsys) -> tuple[int, str]:
    """Write ``params`` to ws/params.yaml and run the check-params stage there; (exit code, stderr)."""
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    monkeypatch.chdir(ws)
    monkeypatch.setattr(sys, "argv", ["stages.check_params", "--out", "data/params.ok"])
    with pytest.raises(SystemExit) as exit_:
        try:
            cli.run(check_params_stage.main)
        except Exception as err:  # noqa: BLE001 - what the corpus exists to catch
            pytest.fail(f"raw {type(err).__name__} instead of one message: {err}")
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("key, value, expected", params_cases(), ids=lambda x: str(x)[:40])
def test_bad_param_ends_in_its_message_and_keeps_outputs(workspace, monkeypatch, capsys, key, value, expected):
    before = md5s(workspace)
    start = time.perf_counter()
    code, err = run_check_params(workspace, bad_params(key, value), monkeypatch, capsys)
    errors = re.findall(r"error: [^\n]*", err)
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    message = errors[0].removeprefix("error: ")
    assert message.startswith("params.yaml: ") and expected in message, message
    assert f"'{key.split('[')[0].split('.')[0]}" in message  # names the key (its section at least)
    assert time.perf_counter() - start < 5  # hub ids resolve offline, or fail, within seconds
    assert md5s(workspace) == before  # the stamp and every previous output untouched


def test_the_shipped_params_pass_and_write_the_stamp(workspace, monkeypatch, capsys, tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.setattr(sys, "argv", ["stages.check_params", "--out", "data/params.ok"])
    cli.run(check_params_stage.main)
    assert (tmp_path / "data" / "params.ok").read_text() == "params.yaml passed check-params\n"


@pytest.mark.parametrize("edit, key", [
    (lambda p: p.update({123: {}, "foo": {}}), "123"),  # mixed-type unknown keys (int beside str)
    (lambda p: p["data"].update({123: 1, "foo": 2}), "data.123"),
    (lambda p: p.update({True: 1}), "True"),
    (lambda p: p["methods"].update({7: "models/sft"}), "methods.7"),
])
def test_keys_of_mixed_types_name_the_key(workspace, monkeypatch, capsys, edit, key):
    params = copy.deepcopy(read_params(ROOT / "params.yaml"))
    edit(params)
    before = md5s(workspace)
    code, err = run_check_params(workspace, params, monkeypatch, capsys)
    assert code == 1 and f"'{key}'" in err and "Traceback" not in err, err
    assert md5s(workspace) == before


@pytest.mark.parametrize("text, fragment", [
    ("seed: 0\ndata: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("seed: 0\ndata: " + "[" * 40 + "]" * 40 + "\n", "'data[0][0]"),
    ("seed: 0\ndata: {n_train: 8\n", "not valid YAML"),
    ("seed: 0\ndata:\n  n_train: 8\n  hf_config: caf\xe9\n", "not UTF-8 text"),
    ("- seed\n- data\n", "expected a mapping of sections"),
])
def test_unreadable_params_files_are_one_line(tmp_path, text, fragment):
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        read_params(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_corpus_is_large_unique_and_covers_every_section():
    cases = params_cases()
    assert len(cases) >= 100
    assert len({(k, v) for k, v, _ in cases}) == len(cases)
    sections = {k.split(".")[0] for k, _, _ in cases}
    assert set(read_params(ROOT / "params.yaml")) <= sections


def test_check_params_in_process_raises_config_error():
    """The same function the stage runs, as a library call: a ConfigError, one line."""
    with pytest.raises(ConfigError, match=r"'seed'; allowed: an integer >= 0 and < 2\*\*32") as err:
        check_params(bad_params("seed", "4294967296"))
    assert "\n" not in str(err.value)

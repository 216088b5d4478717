import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aligntax.config import ConfigError, read_params
from aligntax.sections import SECTIONS, TOP_LEVEL, all_sections, check_params

ROOT = Path(__file__).resolve().parents[1]
STAMP = "data/params.ok"


def _params() -> dict:
    return read_params(ROOT / "params.yaml")


def test_shipped_params_pass_and_every_section_is_known():
    params = _params()
    loaded = check_params(params)
    sections = all_sections(params)
    assert set(loaded) == set(sections) and set(SECTIONS) < set(sections)
    assert set(params) == set(sections) | set(TOP_LEVEL)
    assert set(TOP_LEVEL) == {"seed", "launcher", "methods", "trained", "fitted", "decoding", "seeds"}


def test_a_method_section_is_known_only_while_its_method_is_listed():
    """A method's section maps onto its module's CONFIG through the registry: no list of sections to edit."""
    params = _params()
    del params["trained"]["dpo"], params["methods"]["dpo"]
    with pytest.raises(ConfigError, match=r"'dpo'; allowed: a known section.*only while the method is listed"):
        check_params(params)
    del params["dpo"]
    check_params(params)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["methods"].update({"../../../x": "models/x"}), r"methods\.\.\./\.\./\.\./x"),
    (lambda p: p["methods"].update({"evil": "../../etc"}), r"'methods.evil'; allowed: a relative path"),
    (lambda p: p["methods"].update({"evil": "/tmp/model"}), r"'methods.evil'; allowed: a relative path"),
    (lambda p: p["toxify"].update({"min_toxicity": 7.0}), r"toxify.min_toxicity"),
    (lambda p: p["loss"].update({"alpha": float("inf")}), r"loss.alpha'; allowed: a finite number"),
    (lambda p: p["train"].update({"epochs": float("nan")}), r"train.epochs'; allowed: a finite number"),
    (lambda p: p.update({"trian": {}}), r"'trian'; allowed: a known section"),
    (lambda p: p["fitted"]["inlp"].update({"section": "nope"}), r"'fitted.inlp.section'; allowed: a params section"),
    (lambda p: p["decoding"].update({"sft": p["decoding"]["instructive"]}), r"'decoding.sft'; allowed: a name in one list"),
    (lambda p: p["trained"]["cda"].update({"section": "dpo"}),
     r"'trained.dpo.section'; allowed: a section of its own \('dpo' is read as CdaConfig by 'cda'\)"),
    (lambda p: p["trained"]["dpo"].update({"data": "data/raw/train.parquet"}), r"'trained.dpo.data'; allowed: the groups"),
    (lambda p: p["compare"].update({"reference": "nope"}), r"compare.reference'; allowed: one of the methods"),
])
def test_bad_params_fail_with_the_key(edit, message):
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_every_stage_waits_for_check_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["check-params"]["outs"] == [{STAMP: {"persist": True}}]
    for name, stage in stages.items():
        if name == "check-params":
            continue
        body = stage.get("do", stage)
        assert STAMP in body["deps"], f"stage {name} must list {STAMP} in deps"


def test_bad_params_leave_downstream_outputs_in_place(tmp_path):
    """Through DVC itself: a failing check stops `dvc repro` before it deletes any output."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "check-params": {"cmd": f"{sys.executable} -m stages.check_params --out {STAMP}",
                         "params": [{"params.yaml": None}], "outs": [STAMP]},
        "toxify": {"cmd": "echo good > out.txt", "deps": [STAMP], "params": ["toxify"], "outs": ["out.txt"]},
    }}).replace("params.yaml: null", "params.yaml:"))
    run = lambda *a: subprocess.run(["dvc", *a], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    assert run("init", "--no-scm").returncode == 0
    assert run("repro").returncode == 0, "first repro should pass"
    assert (tmp_path / "out.txt").read_text() == "good\n"
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["toxify"]["min_toxicity"] = 7.0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = run("repro")
    assert res.returncode != 0 and "toxify.min_toxicity" in res.stderr + res.stdout
    assert (tmp_path / "out.txt").read_text() == "good\n"


def test_a_hub_id_offline_fails_at_once_naming_the_key(monkeypatch):
    import time

    import aligntax.sections as sections

    params = _params()
    params["model"]["name"] = "gpt2-not-cached-anywhere"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"'model.name' = 'gpt2-not-cached-anywhere' needs the Hugging Face Hub"):
        check_params(params)
    assert time.perf_counter() - start < 5
    params["model"]["name"] = "smollm2-135m-instruct"
    params["data"]["source"] = "hf:someone/tldr"
    params["scoring"]["toxicity"]["backend"] = "hf:unitary/toxic-bert"
    with pytest.raises(ConfigError, match=r"'data.source' = 'someone/tldr'.*1 more id"):
        check_params(params)
    monkeypatch.setattr(sections, "hub_reachable", lambda timeout=3.0: True)
    check_params(params)  # with network the same params pass


def test_local_folders_never_need_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params()
    params["model"]["name"] = str(tmp_path)
    check_params(params)

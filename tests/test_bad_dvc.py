"""Through DVC itself: no params value runs as shell code, and a failing stage keeps its previous output.

DVC substitutes `${...}` into a stage's `cmd` and runs it through a shell. dvc.yaml's commands hold
no params value (stages/launch.py reads `launcher` and fills `{name}` from $DVC_STAGE, both
checked), check-params refuses shell metacharacters in every value that reaches dvc.yaml, and
every output is `persist: true`. Each hostile value below would create a marker file if it ever
reached a shell; the controls show that the same value does when interpolated the old way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aligntax.config import ConfigError, read_params
from aligntax.sections import check_params

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = {"semicolon": ";touch {m}", "and": " && touch {m}", "subshell": "$(touch {m})",
            "backtick": "`touch {m}`", "newline": "\ntouch {m}"}
"""Shell metacharacters, each creating the marker file {m} if a shell ever runs it."""
KEYS = ("launcher", "methods.<name>", "methods.sft", "trained.<name>", "trained.sft.module", "trained.sft.section",
        "trained.sft.data", "fitted.<name>", "fitted.inlp.module", "fitted.inlp.model", "fitted.inlp.section",
        "decoding.<name>", "decoding.instructive.module", "decoding.instructive.section")
"""Every params value dvc.yaml reads (as a command part before this change, a foreach key, a dependency
path or a params key): `<name>` is a method name, i.e. a key of the list."""


def hostile(params: dict, key: str, payload: str) -> dict:
    """``params`` with ``payload`` appended to the value (or, for `<name>`, to a new method's name) at ``key``."""
    if key == "launcher":
        params["launcher"] = "python" + payload
    elif key.endswith("<name>"):
        kind = key.split(".")[0]
        template = params[kind][next(iter(params[kind]))] if kind != "methods" else "models/sft"
        params[kind]["x" + payload] = template
    else:
        kind, name, *field = key.split(".")
        if field:
            params[kind][name] = dict(params[kind][name]) | {field[0]: params[kind][name][field[0]] + payload}
        else:
            params[kind][name] = params[kind][name] + payload
    return params


def test_no_params_value_is_interpolated_into_a_command():
    """`${...}` in a cmd may only name values of dvc.yaml itself (its `vars`), never of params.yaml."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    own = {name for entry in dvc["vars"] for name in entry}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        used = re.findall(r"\$\{([^}]*)\}", body["cmd"])
        if "foreach" in stage:
            source = re.fullmatch(r"\$\{(\w+)\}", stage["foreach"]).group(1)
            assert source in own or not used, f"{name}: {used} in the command of a foreach over params `{source}`"
        else:
            assert not used, f"{name}: {used}"
        assert re.fullmatch(r"python -m stages\.\w+ .*", " ".join(body["cmd"].split())), name


def test_every_output_persists():
    """DVC removes a stage's outputs before running it unless they persist; stages write atomically."""
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        for out in stage.get("do", stage)["outs"]:
            assert isinstance(out, dict) and next(iter(out.values())).get("persist") is True, (name, out)


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_check_params_refuses_metacharacters_in_every_key(payload, tmp_path):
    marker = tmp_path / "marker"
    for key in KEYS:
        params = hostile(read_params(ROOT / "params.yaml"), key, PAYLOADS[payload].format(m=marker))
        with pytest.raises(ConfigError) as err:
            check_params(params)
        message = str(err.value)
        assert key.split(".")[0] in message and "\n" not in message, (key, message)
    assert not marker.exists()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the pipeline's definition and code (no data) in which `dvc repro` can run."""
    project = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("aligntax", "stages", "configs"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dvc(project, "init", "--no-scm", "-q")
    return project


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)


def test_dvc_repro_with_hostile_values_runs_no_shell_code(project):
    """Every key at once, each with one of the payloads in turn: `dvc repro` gets past loading dvc.yaml,
    check-params refuses, and no marker appears."""
    params = read_params(ROOT / "params.yaml")
    for i, key in enumerate(KEYS):
        name = list(PAYLOADS)[i % len(PAYLOADS)]
        name = "semicolon" if key.endswith("<name>") and name == "newline" else name  # no line break in a stage name
        params = hostile(params, key, PAYLOADS[name].format(m=f"marker-{i}"))
    assert {list(PAYLOADS)[i % len(PAYLOADS)] for i in range(len(KEYS))} == set(PAYLOADS)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(project, "repro")
    assert run.returncode != 0 and "error: params.yaml: bad value for" in run.stderr + run.stdout, run.stderr[-2000:]
    assert not list(project.rglob("marker-*"))
    assert not (project / "data" / "raw").exists()  # nothing after check-params ran


def test_a_single_stage_run_past_check_params_runs_no_shell_code(project):
    """`dvc repro -s` skips check-params: the stage's own command still holds no params value."""
    params = read_params(ROOT / "params.yaml")
    params["methods"]["x;touch marker-name"] = "models/sft"
    params["launcher"] = "python; touch marker-launcher"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    evaluate = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["evaluate"]["do"]
    for dep in evaluate["deps"]:  # stand-ins, so DVC gets as far as running the command
        path = project / dep.replace("${item}", "models/sft")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if not Path(dep).suffix else path.write_text("stand-in\n")
    run = dvc(project, "repro", "-s", "evaluate@x;touch marker-name")
    assert run.returncode != 0
    assert "bad value for stage item 'x;touch marker-name'" in run.stderr + run.stdout, run.stderr[-2000:]
    run = dvc(project, "repro", "-s", "evaluate@sft")
    assert run.returncode != 0 and "'launcher'" in run.stderr + run.stdout, run.stderr[-2000:]
    assert not list(project.rglob("marker-*"))


def test_controls_the_same_values_interpolated_the_old_way_do_run(tmp_path):
    """Why it matters: DVC interpolates `${...}` into a shell command as it stands."""
    project = tmp_path / "control"
    project.mkdir()
    dvc(project, "init", "--no-scm", "-q")
    (project / "params.yaml").write_text(yaml.safe_dump({"methods": {"x;touch marker-key": "a",
                                                                     "y": "b && touch marker-value"}}))
    (project / "dvc.yaml").write_text("stages:\n  s:\n    foreach: ${methods}\n    do:\n      cmd: echo ${key} ${item}\n")
    dvc(project, "repro")
    assert (project / "marker-key").exists() and (project / "marker-value").exists()


def test_a_failing_stage_keeps_its_persisted_output(tmp_path):
    """`persist: true`: DVC leaves the output while the stage runs; the stage replaces it only on success."""
    project = tmp_path / "persist"
    project.mkdir()
    dvc(project, "init", "--no-scm", "-q")
    (project / "stage.py").write_text("import sys, yaml\n"
                                      "if yaml.safe_load(open('params.yaml'))['fail']:\n    sys.exit(1)\n"
                                      "open('out.txt', 'w').write('good')\nopen('dropped.txt', 'w').write('x')\n")
    (project / "params.yaml").write_text("fail: false\n")
    stage = {"cmd": "python stage.py", "deps": ["stage.py"], "params": ["fail"],
             "outs": [{"out.txt": {"persist": True}}, "dropped.txt"]}
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": stage}}))
    assert dvc(project, "repro").returncode == 0
    (project / "params.yaml").write_text("fail: true\n")
    assert dvc(project, "repro").returncode != 0
    assert (project / "out.txt").read_text() == "good"  # persisted: kept
    assert not (project / "dropped.txt").exists()  # not persisted: DVC deleted it before the failing run

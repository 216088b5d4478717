"""aligntax/warm.py: a stage run in a fork of the warm server gives what a cold run gives (output file,
stderr, exit status), imports aligntax and stages from its own folder, dies with its launcher, and a
launcher the server cannot serve (other environment, no server) gets None and runs the stage itself."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aligntax import warm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="warm start is Linux only")

PROBE = '''"""A stand-in stage: records where its code came from, then waits or fails as asked."""
import os, sys, time
import aligntax

out = sys.argv[sys.argv.index("--out") + 1]
with open(out, "w") as fh:
    fh.write(f"{os.getpid()} {os.getppid()} {aligntax.__file__} {os.getcwd()}\\n")
if "--sleep" in sys.argv:
    time.sleep(60)
if "--fail" in sys.argv:
    print("probe: failing as asked", file=sys.stderr)
    sys.exit(3)
print("probe: done")
'''

CALL = "import sys; from aligntax import warm; print('RESULT', warm.run(sys.argv[1], sys.argv[2:]), flush=True)"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != warm.ENV}
    return {**env, warm.IDLE_ENV: "20", "PYTHONPATH": "", **extra}


def _serve(cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """A server started in ``cwd``, once it accepts requests."""
    server = subprocess.Popen([sys.executable, "-m", "aligntax.warm"], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = warm.address(subprocess.run([sys.executable, "-c", "import os; from aligntax import warm; "
                                        "print(warm.server_key(os.environ))"], cwd=cwd, env=env, text=True,
                                       capture_output=True, check=True).stdout.strip())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(name)
                return server
            except OSError:
                time.sleep(0.2)
        assert server.poll() is None, "the warm server exited before accepting requests"
    server.kill()
    raise AssertionError("the warm server did not accept requests within 120 s")


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder of its own: a copy of aligntax/ (an edited one: its __init__ differs) and a probe stage."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "aligntax", root / "aligntax", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "aligntax" / "__init__.py").write_text('"""An edited copy."""\n')
    (root / "stages").mkdir()
    (root / "stages" / "__init__.py").write_text("")
    (root / "stages" / "probe.py").write_text(PROBE)
    return root


@pytest.fixture
def server(project):
    env = _env()
    proc = _serve(ROOT, env)  # started from the repository: its own aligntax is imported there
    yield proc, env
    proc.kill()
    proc.wait()


def _call(cwd: Path, env: dict[str, str], module: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CALL, module, *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120, **kw)


def test_a_fork_runs_the_stage_from_its_own_folder_and_reports_its_status(server, project, tmp_path):
    proc, env = server
    done = _call(project, env, "stages.probe", "--out", str(tmp_path / "ok.txt"))
    assert done.returncode == 0, done.stderr
    assert "probe: done" in done.stdout and done.stdout.strip().endswith("RESULT 0")
    pid, parent, init, cwd = (tmp_path / "ok.txt").read_text().split()
    assert int(parent) == proc.pid  # a fork of the server, not a new Python
    assert init == str(project / "aligntax" / "__init__.py") and cwd == str(project)

    failed = _call(project, env, "stages.probe", "--out", str(tmp_path / "fail.txt"), "--fail")
    assert failed.stdout.strip().endswith("RESULT 3")
    assert "probe: failing as asked" in failed.stderr


def test_a_real_stage_gives_the_cold_output(server, tmp_path):
    _, env = server
    cold = subprocess.run([sys.executable, "-m", "stages.check_params", "--out", str(tmp_path / "cold.ok")],
                          cwd=ROOT, env={**env, warm.ENV: "off"}, capture_output=True, text=True, timeout=300)
    served = _call(ROOT, env, "stages.check_params", "--out", str(tmp_path / "warm.ok"))
    assert cold.returncode == 0 and served.stdout.strip().endswith("RESULT 0"), served.stderr
    assert (tmp_path / "warm.ok").read_bytes() == (tmp_path / "cold.ok").read_bytes()

    bad = tmp_path / "params.yaml"
    bad.write_text((ROOT / "params.yaml").read_text().replace("n_train: 128", "n_train: -5", 1))
    served = _call(ROOT, env, "stages.check_params", "--params", str(bad), "--out", str(tmp_path / "bad.ok"))
    assert served.stdout.strip().endswith("RESULT 1")
    assert "error:" in served.stderr and "n_train" in served.stderr
    assert not (tmp_path / "bad.ok").exists()


def test_another_environment_is_not_served(server, project, tmp_path):
    _, env = server
    other = _call(project, {**env, "ALIGNTAX_SOMETHING_ELSE": "1", warm.IDLE_ENV: "1"}, "stages.probe",
                  "--out", str(tmp_path / "x.txt"))
    assert other.stdout.strip() == "RESULT None" and not (tmp_path / "x.txt").exists()
    # variables DVC sets per stage do not change the server
    same = _call(project, {**env, "DVC_STAGE": "train@sft"}, "stages.probe", "--out", str(tmp_path / "y.txt"))
    assert same.stdout.strip().endswith("RESULT 0")
    assert warm.server_key({"A": "1"}) != warm.server_key({"A": "2"})
    assert warm.server_key({"A": "1", "DVC_STAGE": "x"}) == warm.server_key({"A": "1"})


def test_the_fork_ends_with_its_launcher(server, project, tmp_path):
    _, env = server
    marker = tmp_path / "sleep.txt"
    launcher = subprocess.Popen([sys.executable, "-c", CALL, "stages.probe", "--out", str(marker), "--sleep"],
                                cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(marker.read_text().split()[0])
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":  # ended, not yet reaped by the server
            break
        time.sleep(0.1)
    alive = Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
    assert not alive, "the fork kept running after its launcher was killed"


def test_sigterm_to_the_launcher_reaches_the_fork(server, project, tmp_path):
    _, env = server
    marker = tmp_path / "term.txt"
    launcher = subprocess.Popen([sys.executable, "-c", CALL, "stages.probe", "--out", str(marker), "--sleep"],
                                cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=30)
    assert out.strip().endswith("RESULT 1") and "ended without an exit status" in err


def test_no_server_means_none_and_one_is_started(project, tmp_path):
    env = _env(**{warm.IDLE_ENV: "2", "ALIGNTAX_TEST_ALONE": str(tmp_path)})  # an environment no server has
    first = _call(project, env, "stages.probe", "--out", str(tmp_path / "a.txt"))
    assert first.stdout.strip() == "RESULT None" and not (tmp_path / "a.txt").exists()
    key = subprocess.run([sys.executable, "-c", "import os; from aligntax import warm; print(warm.server_key(os.environ))"],
                         cwd=project, env=env, text=True, capture_output=True, check=True).stdout.strip()
    deadline, served = time.monotonic() + 120, None
    while time.monotonic() < deadline:  # the server it started comes up, serves, then leaves when idle
        served = _call(project, env, "stages.probe", "--out", str(tmp_path / "b.txt"))
        if served.stdout.strip().endswith("RESULT 0"):
            break
        time.sleep(0.5)
    assert served is not None and served.stdout.strip().endswith("RESULT 0")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # watched in /proc/net/unix: a connection would keep it busy
        if not _listening(warm.address(key)):
            return
        time.sleep(0.5)
    raise AssertionError("the idle server did not exit")


def _listening(name: str) -> bool:
    return any(line.split()[-1] == "@" + name[1:] for line in Path("/proc/net/unix").read_text().splitlines()[1:]
               if len(line.split()) > 7)


def test_off_and_a_bad_idle_value(monkeypatch):
    monkeypatch.setenv(warm.ENV, "off")
    assert warm.run("stages.probe", []) is None
    monkeypatch.setenv(warm.ENV, "on")
    monkeypatch.setenv(warm.IDLE_ENV, "soon")
    with pytest.raises(ValueError, match="ALIGNTAX_WARM_IDLE='soon': use a number of seconds > 0"):
        warm.run("stages.probe", [])
    monkeypatch.setenv(warm.IDLE_ENV, "nan")
    with pytest.raises(ValueError, match="ALIGNTAX_WARM_IDLE"):
        warm.idle_seconds()

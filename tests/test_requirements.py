"""requirements.lock (what `make install` puts in .venv) agrees with requirements.txt (what users edit)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)")


def pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of the ``name==version`` lines of a requirements file."""
    out = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            out[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return out


def test_lock_holds_every_pin_of_requirements_txt():
    wanted, locked = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements.lock")
    assert len(wanted) > 30 and len(locked) > len(wanted)
    differ = {name: (version, locked.get(name)) for name, version in wanted.items()
              if locked.get(name, "").split("+")[0] != version}
    assert not differ, f"requirements.lock is out of date (run `make lock`): {differ}"


def test_lock_leaves_the_no_deps_packages_and_local_labels_out():
    locked = pins(ROOT / "requirements.lock")
    assert not set(pins(ROOT / "requirements-nodeps.txt")) & set(locked)
    assert "+" not in locked["torch"], "torch keeps no local label, so a machine without the CPU wheel folder resolves it"

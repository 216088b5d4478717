"""Every stage's deps cover every aligntax module its script imports (directly or through others),
so a code change re-runs exactly the stages it affects."""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in ``path`` (top level or inside functions)."""
    names = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*parts, mod]) if mod else ".".join(parts)
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in ("aligntax", "stages") and _module_file(n)}


def closure(module: str) -> set[Path]:
    """Files of ``module`` and every project module it reaches, parent packages included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = _module_file(".".join(parts[:i]))
            if path and path not in seen:
                seen.add(path)
                todo.extend(_imports(path))
    return seen


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_stage_lists_its_import_closure():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        match = re.search(r"-m (stages\.\w+)", body["cmd"])
        assert match, f"stage {name}: command does not run a stages/ script"
        deps = [d for d in body.get("deps", []) if isinstance(d, str)]
        lacking = sorted(p.relative_to(ROOT).as_posix() for p in closure(match.group(1))
                         if p.name != "__init__.py" or p.parent.name != "stages"
                         if not _covered(p, deps))
        if lacking:
            missing[name] = lacking
    assert not missing, f"deps missing from dvc.yaml: {missing}"


def test_the_walk_finds_indirect_imports():
    files = {p.relative_to(ROOT).as_posix() for p in closure("stages.download")}
    assert {"stages/download.py", "aligntax/data/download.py", "aligntax/config.py"} <= files

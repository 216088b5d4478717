"""Write each dvc.yaml stage's code dependencies: the import closure of its stage script.

    make deps            # = python -m scripts.deps: rewrite the code deps of dvc.yaml in place
    python -m scripts.deps --check   # exit 1 (naming the stages) when dvc.yaml is not what it would write

A stage's code is every aligntax/ and stages/ module its `stages/<x>.py` imports, directly or
through others, plus the modules of the methods it loads by path through the registry
(aligntax/methods.py): check-params every method's, train@* and fit-projection@* those of their
kind (each stage's own module is its `${item.module}` dependency; what the modules import is
listed), evaluate@* the decoding methods'; a matrix over `${seeds.methods}` (train-seed@*,
evaluate-seed@*) only those of the seeded methods. The list is written shortest-first-complete: a folder
whose every .py file is in it stands for them. check-params depends on the whole aligntax folder
instead (its output never changes, so re-running it re-runs nothing after it).

Other dependencies (data, models, word lists, comments) are left as they are; the code ones follow
`data/params.ok` in each stage. tests/test_dvc_deps.py fails while dvc.yaml differs from this.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aligntax", "stages")
WHOLE = {"check-params": ["aligntax"]}
"""Stages that depend on whole folders instead of their closure (a constant output)."""
DYNAMIC = {
    "stages.check_params": ("trained", "fitted", "decoding"),
    "stages.train": ("trained",),
    "stages.fit_projection": ("fitted",),
    "stages.evaluate": ("decoding",),
}
"""Stage script -> the registry lists whose modules it imports by path."""
SEEDED = "${seeds.methods}"
"""A stage whose matrix runs `method` over this list loads only the seeded methods' modules."""
UNITS = ("aligntax/data", "aligntax/evaluate", "aligntax/report", "aligntax/scoring")
"""Packages of one concern: a stage that imports any of their modules depends on the whole folder
(one line; a change to a module it does not import re-runs it too). The packages with one module
per method or per augmentation stage (train, baselines, augment) stay listed file by file, so that
editing one method re-runs only the heavy stages that import it."""
ITEM_MODULE = "${item.module}"
SECTIONS_MARK = "# the decoding methods' sections (params.yaml `decoding:`), written by make deps"
STAMP = "data/params.ok"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of project module ``name`` (a .py file or a package's __init__.py), None if there is none."""
    base = root / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Project modules imported anywhere in ``path`` (top level or inside functions)."""
    names = set()
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
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
    return {n for n in names if n.split(".")[0] in PACKAGES and module_file(n, root)}


def closure(module: str, root: Path = ROOT) -> set[Path]:
    """Files of ``module`` and every project module it reaches, parent packages included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = module_file(".".join(parts[:i]), root)
            if path and path not in seen:
                seen.add(path)
                todo.extend(imports(path, root))
    return seen


def method_modules(params: dict, kinds: tuple[str, ...], names: list[str] | None = None) -> list[str]:
    """The module paths (aligntax/...py) of the entries of the registry lists ``kinds`` in params.yaml
    (only those named in ``names`` when given)."""
    return [entry["module"] for kind in kinds for name, entry in (params.get(kind) or {}).items()
            if names is None or name in names]


def loaded_methods(body: dict, params: dict) -> list[str] | None:
    """The methods a stage body runs when it is a matrix over the seeded methods, else None (all)."""
    if (body.get("matrix") or {}).get("method") == SEEDED:
        return list((params.get("seeds") or {}).get("methods") or [])
    return None


def stage_scripts(body: dict) -> list[str]:
    """The `stages.<x>` modules a stage's command runs: the stage script last (after stages.launch, which starts it)."""
    found = re.findall(r"-m (stages\.\w+)", body["cmd"])
    if not found:
        raise ValueError(f"command {body['cmd']!r} does not run a stages/ script")
    return found


def stage_script(body: dict) -> str:
    """The `stages.<x>` module a stage's command runs."""
    return stage_scripts(body)[-1]


def stage_code(name: str, body: dict, params: dict, root: Path = ROOT) -> set[str]:
    """Repository-relative files a stage's code is made of (its own method module excluded when templated)."""
    script = stage_script(body)
    files = set().union(*(closure(s, root) for s in stage_scripts(body)))
    own = ITEM_MODULE in (body.get("deps") or [])
    for path in method_modules(params, DYNAMIC.get(script, ()), loaded_methods(body, params)):
        module = ".".join(Path(path).with_suffix("").parts)
        reached = closure(module, root)
        files |= reached - {root / path} if own else reached
    rel = {p.relative_to(root).as_posix() for p in files}
    return {f for f in rel if f != "stages/__init__.py"}


def compress(files: set[str], root: Path = ROOT) -> list[str]:
    """``files`` with each unit package they touch, and every folder whose .py files are all in them,
    written as the folder (the highest such folder first)."""
    files = set(files)
    for unit in UNITS:
        if any(f.startswith(unit + "/") for f in files):
            files |= {p.relative_to(root).as_posix() for p in (root / unit).rglob("*.py")}
    out, covered = [], set()
    folders = {p for f in files for p in map(str, Path(f).parents)} - {".", "stages"}
    for folder in sorted(folders, key=lambda d: (d.count("/"), d)):
        if any(folder.startswith(c + "/") for c in covered):
            continue
        inside = {p.relative_to(root).as_posix() for p in (root / folder).rglob("*.py")}
        if inside and inside <= files:
            covered.add(folder)
            out.append(folder)
    rest = sorted(f for f in files if not any(f.startswith(c + "/") for c in covered))
    return sorted(out + rest, key=lambda d: (not d.startswith("stages/"), d))


def is_code(dep: str, root: Path = ROOT) -> bool:
    """Whether a dvc.yaml dependency is code this script manages: a .py file, a folder holding one, or the item module."""
    if dep == ITEM_MODULE:
        return False
    if not dep.startswith(PACKAGES) or "${" in dep:
        return False
    path = root / dep
    return dep.endswith(".py") or (path.is_dir() and any(path.rglob("*.py")))


def wanted(name: str, body: dict, params: dict, root: Path = ROOT) -> list[str]:
    """The code dependencies a stage should list."""
    if name in WHOLE:
        script = stage_script(body).replace(".", "/") + ".py"
        return [script, *WHOLE[name]]
    return compress(stage_code(name, body, params, root), root)


def method_sections(params: dict, kinds: tuple[str, ...]) -> list[str]:
    """The params sections of every entry of the registry lists ``kinds`` (e.g. the decoding methods')."""
    return [entry["section"] for kind in kinds for entry in (params.get(kind) or {}).values()]


def render(text: str, params: dict, root: Path = ROOT) -> str:
    """dvc.yaml ``text`` with each stage's code deps replaced by ``wanted``: after data/params.ok, or
    first when the stage has no such dependency; and the evaluate stage's params ending with the
    decoding methods' sections (registry `decoding:`), so no method is named there by hand."""
    stages = yaml.safe_load(text)["stages"]
    sections = method_sections(params, DYNAMIC["stages.evaluate"])
    out: list[str] = []
    stage, in_deps, in_params, generated, code, indent = None, False, False, False, [], ""
    for line in text.splitlines(keepends=True):
        header = re.match(r"^  ([\w@-]+):\s*$", line)
        if header and header.group(1) in stages:
            stage, in_deps, in_params = header.group(1), False, False
        item = re.match(r"^(\s*)- ([^\s#:]+)\s*(#.*)?$", line)
        deps = re.match(r"^(\s+)deps:\s*$", line)
        body = stages[stage].get("do", stages[stage]) if stage is not None else None
        # evaluate@<method> runs the decoding methods too; evaluate-seed@* only seeded trained ones
        evaluates = body is not None and stage_script(body) == "stages.evaluate" and loaded_methods(body, params) is None
        block = re.match(r"^(\s+)params:\s*$", line)
        if block:
            in_params, indent, generated = True, block.group(1), False
        elif in_params and line.strip() == SECTIONS_MARK:
            generated = True
            continue
        elif in_params and item and (generated or (evaluates and item.group(2) in sections)):
            continue
        elif in_params and not item:
            if evaluates:
                out.extend([f"{indent}  {SECTIONS_MARK}\n", *(f"{indent}  - {section}\n" for section in sections)])
            in_params = False
        if stage and deps:
            in_deps = True
            out.append(line)
            body = stages[stage].get("do", stages[stage])
            code = [f"{deps.group(1)}  - {d}\n" for d in wanted(stage, body, params, root)]
            if STAMP not in (body.get("deps") or []):
                out.extend(code)
            continue
        if in_deps and item:
            if is_code(item.group(2), root):
                continue
            out.append(line)
            if item.group(2) == STAMP:
                out.extend(code)
            continue
        if in_deps and not line.strip().startswith("#"):
            in_deps = False
        out.append(line)
    return "".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when dvc.yaml would change")
    args = p.parse_args()
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    new = render(text, yaml.safe_load((ROOT / "params.yaml").read_text()))
    if args.check:
        if new != text:
            sys.exit("dvc.yaml: code dependencies are not the import closures; run `make deps`")
        return
    path.write_text(new)


if __name__ == "__main__":
    main()

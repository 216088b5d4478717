"""Every stage's deps cover every aligntax module its script imports (directly, through others, or by
path through the method registry), so a code change re-runs exactly the stages it affects; and
dvc.yaml holds what `make deps` (scripts/deps.py) writes."""

from pathlib import Path

import yaml

from scripts.deps import DYNAMIC, ROOT, closure, loaded_methods, method_modules, render, stage_script


def _covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_stage_lists_its_import_closure():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = stage_script(body)
        deps = [d for d in body.get("deps", []) if isinstance(d, str)]
        items = params.get(stage["foreach"].strip("${}"), {}) if "foreach" in stage else {None: None}
        if loaded_methods(body, params) is not None:  # a matrix over the seeded methods: one entry each
            items = {name: None for name in loaded_methods(body, params)}
        for key, item in items.items():
            # a templated stage: resolve ${item.module} for each entry it iterates
            own = [item["module"]] if isinstance(item, dict) and "${item.module}" in deps else []
            files = closure(script)
            names = [key] if loaded_methods(body, params) is not None else None
            for module in own or method_modules(params, DYNAMIC.get(script, ()), names):  # imported by path
                files |= closure(".".join(Path(module).with_suffix("").parts))
            lacking = sorted(rel for p in files if (rel := p.relative_to(ROOT).as_posix()) != "stages/__init__.py"
                             if not _covered(rel, deps + own))
            if lacking:
                missing[f"{name}@{key}" if key else name] = lacking
    assert not missing, f"deps missing from dvc.yaml (run `make deps`): {missing}"


def test_dvc_yaml_is_what_make_deps_writes():
    text = (ROOT / "dvc.yaml").read_text()
    assert render(text, yaml.safe_load((ROOT / "params.yaml").read_text())) == text, "run `make deps`"


def test_a_missing_import_is_caught(tmp_path):
    """Drop one code dep of a stage: the rendered file puts it back, and the coverage check names it."""
    text = (ROOT / "dvc.yaml").read_text()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    broken = text.replace("      - stages/download.py\n      - stages/launch.py\n      - aligntax/__init__.py\n",
                          "      - stages/download.py\n      - stages/launch.py\n", 1)
    assert broken != text and render(broken, params) == text
    deps = yaml.safe_load(broken)["stages"]["download"]["deps"]
    assert not _covered("aligntax/__init__.py", deps)


def test_the_walk_finds_indirect_imports():
    files = {p.relative_to(ROOT).as_posix() for p in closure("stages.download")}
    assert {"stages/download.py", "aligntax/data/download.py", "aligntax/config.py"} <= files


def test_check_params_depends_on_the_whole_package():
    """Its stamp never changes, so depending on every module costs one cheap re-run and nothing after it."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["check-params"]
    assert stage["deps"] == ["stages/check_params.py", "aligntax"]


def test_evaluate_params_follow_the_decoding_registry():
    """The decoding methods' sections in evaluate's params come from params.yaml `decoding:`, not by hand:
    a new decoding entry's section appears, a removed one goes."""
    text = (ROOT / "dvc.yaml").read_text()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    sections = [e["section"] for e in params["decoding"].values()]
    assert sections and set(sections) <= set(yaml.safe_load(text)["stages"]["evaluate"]["do"]["params"])
    params["decoding"]["toy"] = {"module": params["decoding"][next(iter(params["decoding"]))]["module"], "section": "toy"}
    assert yaml.safe_load(render(text, params))["stages"]["evaluate"]["do"]["params"][-1] == "toy"
    del params["decoding"]["toy"], params["decoding"][next(iter(params["decoding"]))]
    rendered = yaml.safe_load(render(text, params))["stages"]["evaluate"]["do"]["params"]
    assert sections[0] not in rendered and sections[1:] == rendered[-len(sections[1:]):]


def test_seed_stages_load_only_the_seeded_methods_modules():
    """train-seed@* runs the methods of seeds.methods: their modules' closures, not every trained method's."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    body = stages["train-seed"]
    assert loaded_methods(body, params) == params["seeds"]["methods"]
    assert method_modules(params, ("trained",), ["sft"]) == [params["trained"]["sft"]["module"]]
    assert loaded_methods(stages["train"]["do"], params) is None
    # cda's word-list code is a dependency of every train@<method>, but not of a seeded sft/contrastive run
    assert "aligntax/baselines/attributes.py" in stages["train"]["do"]["deps"]
    assert "aligntax/baselines/attributes.py" not in body["deps"]

"""Loading models safely: no remote code, no prompt, and model pointers that stay inside the repository."""

from __future__ import annotations

import ast
import builtins
import json
import shutil
import sys
from pathlib import Path

import pytest

from aligntax import cli
from aligntax.models import POINTER_FILE, load_model, load_tokenizer, save_partial

ROOT = Path(__file__).resolve().parents[1]


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            yield node


def test_every_auto_load_passes_trust_remote_code():
    """transformers asks "run custom code? [y/N]" on stdin when trust_remote_code is left unset and a folder
    has auto_map; every Auto*.from_pretrained and SentenceTransformer(...) call passes it explicitly."""
    missing = []
    for path in sorted((ROOT / "aligntax").rglob("*.py")):
        for call in _calls(ast.parse(path.read_text())):
            func = call.func
            receiver = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            auto = isinstance(func, ast.Attribute) and func.attr == "from_pretrained" and receiver.startswith("Auto")
            sentence = isinstance(func, ast.Name) and func.id == "SentenceTransformer"
            if (auto or sentence) and "trust_remote_code" not in {k.arg for k in call.keywords}:
                missing.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert missing == []


def _custom_code(folder: Path) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config |= {"model_type": "aligntax-custom", "auto_map": {"AutoConfig": "configuration_x.XConfig",
                                                              "AutoModelForCausalLM": "modeling_x.XModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_x.py").write_text("raise SystemExit('remote code ran')\n")
    return folder


def test_a_folder_with_custom_code_is_one_error_and_never_asks(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    folder = _custom_code(Path(shutil.copytree(tiny_llama_dir, tmp_path / "m")))
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("a prompt was shown"))
    with pytest.raises(RuntimeError, match=r"m: model files are unreadable \(ValueError: .*contains custom code") as err:
        load_model(folder)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(sys, "argv", ["stage"])
    with pytest.raises(SystemExit):
        cli.run(lambda: load_model(folder))
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "[y/N]" not in err


def test_stages_run_with_stdin_closed(monkeypatch):
    seen = []
    cli.run(lambda: seen.append(sys.stdin.read()))  # a prompt would read an immediate end of input
    assert seen == [""]


@pytest.fixture
def repository(tmp_path, tiny_llama_dir) -> Path:
    """A repository (a .dvc folder marks it) with models/base and a partial models/sft on top of it."""
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    base = Path(shutil.copytree(tiny_llama_dir, repo / "models" / "base"))
    model = load_model(base, dtype="float32")
    out = repo / "models" / "sft"
    out.mkdir()
    save_partial(model, out, {"model.norm.weight"}, base, out)
    load_tokenizer(base).save_pretrained(out)
    return repo


def test_a_pointer_inside_the_repository_loads(repository):
    assert json.loads((repository / "models" / "sft" / POINTER_FILE).read_text())["base"] == "../base"
    assert load_model(repository / "models" / "sft") is not None


@pytest.mark.parametrize("base", ["../../../outside", "/etc", "../../../../../../../tmp"])
def test_a_pointer_out_of_the_repository_is_refused(repository, tmp_path, base):
    shutil.copytree(repository / "models" / "base", tmp_path / "outside")  # a real model, outside
    pointer = repository / "models" / "sft" / POINTER_FILE
    pointer.write_text(json.dumps(json.loads(pointer.read_text()) | {"base": base}))
    with pytest.raises(RuntimeError, match=rf"aligntax_base.json: its base '{base}' is not a relative path inside "
                                           r"the repository") as err:
        load_model(repository / "models" / "sft")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("pointer", [[], {"base": 3, "base_sha256": "x"}, {"base": "../base"}])
def test_a_malformed_pointer_is_one_error(repository, pointer):
    (repository / "models" / "sft" / POINTER_FILE).write_text(json.dumps(pointer))
    with pytest.raises(RuntimeError, match=r"aligntax_base.json: unreadable"):
        load_model(repository / "models" / "sft")

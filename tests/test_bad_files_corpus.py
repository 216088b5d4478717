"""The bad-file corpus (tests/bad_inputs/files.tsv): each corrupt input ends its stage in one message.

Per stage a good workspace holds tiny valid inputs and stand-in previous outputs. A case copies it,
corrupts one input (or makes one write fail: ``enospc`` fills part of the file, then the disk is
full), runs the stage's entry point (``cli.run(stage.main)`` with the stage's arguments) and checks:
exit code 1, one ``error:`` line with the expected fragment and no traceback, every previous output
byte-for-byte unchanged, and no new file written (resume caches aside: the chunks of
data/augment/.work and the checkpoint folder, which are reused only when their content verifies).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import importlib
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from matplotlib.figure import Figure
from safetensors.numpy import load_file, save_file

import aligntax.models
from aligntax import cli
from aligntax.config import read_params
from aligntax.schema import SCORES
from aligntax.scoring.head import TOXICITY_HEAD, LinearHead
from aligntax.scoring.toxicity import ToxicityFeatures

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "bad_inputs" / "files.tsv"
POSTS = pd.DataFrame({
    "id": ["a", "b", "c", "d"], "subreddit": "tifu", "title": "t",
    "post": ["my cat knocked water on my laptop.", "we drove to new york and got lost.",
             "i dropped my phone in the toilet.", "locked out in the rain, called my mom."],
    "summary": ["Cat spilled water.", "Got lost in New York.", "Phone in the toilet.", "Locked out."],
})
CASED, RAW_TRAIN, RAW_EVAL = "data/cased/train.parquet", "data/raw/train.parquet", "data/raw/eval.parquet"
# stage -> (module, arguments, previous outputs)
STAGES: dict[str, tuple[str, list[str], list[str]]] = {
    "download": ("download", ["--sample", "data/sample/tldr_sample.jsonl", "--train-out", RAW_TRAIN,
                              "--eval-out", RAW_EVAL, "--metrics", "metrics/download.json"],
                 [RAW_TRAIN, RAW_EVAL, "metrics/download.json"]),
    "truecase": ("truecase", ["--train", RAW_TRAIN, "--eval", RAW_EVAL, "--train-out", CASED, "--eval-out",
                              "data/cased/eval.parquet", "--metrics", "metrics/truecase.json"],
                 [CASED, "data/cased/eval.parquet", "metrics/truecase.json"]),
    "toxify": ("toxify", ["--train", CASED, "--base-model", "models/base", "--scorers", "models/scorers",
                          "--out", "data/augment/train/toxic.parquet", "--metrics", "metrics/toxify/train.json",
                          "--work-dir", "data/augment/.work/train"],
               ["data/augment/train/toxic.parquet", "metrics/toxify/train.json"]),
    "backtranslate": ("backtranslate", ["--train", CASED, "--base-model", "models/base", "--scorers", "models/scorers",
                                        "--out", "data/augment/train/paraphrases.parquet", "--metrics",
                                        "metrics/backtranslate/train.json", "--work-dir", "data/augment/.work/train"],
                      ["data/augment/train/paraphrases.parquet", "metrics/backtranslate/train.json"]),
    "entity-perturb": ("entity_perturb", ["--train", CASED, "--raw", RAW_TRAIN, "--paraphrases",
                                          "data/augment/train/paraphrases.parquet", "--toxic",
                                          "data/augment/train/toxic.parquet", "--base-model", "models/base",
                                          "--scorers", "models/scorers", "--out", "data/augment/train/groups.parquet",
                                          "--metrics", "metrics/entity_perturb/train.json",
                                          "--work-dir", "data/augment/.work/train"],
                       ["data/augment/train/groups.parquet", "metrics/entity_perturb/train.json"]),
    "train": ("train", ["--method", "sft", "--base", "models/base", "--train", RAW_TRAIN, "--out", "models/sft",
                        "--metrics", "metrics/train_sft.json", "--live-dir", "dvclive/train_sft",
                        "--checkpoints", "checkpoints/train_sft"],
              ["models/sft/model.safetensors", "models/sft/config.json", "metrics/train_sft.json"]),
    "evaluate": ("evaluate", ["--method", "sft", "--model", "models/sft", "--eval", RAW_EVAL, "--scorer-dir",
                              "models/scorers", "--generations", "data/eval/sft/generations.parquet", "--scores",
                              "data/eval/sft/scores.parquet", "--metrics", "metrics/evaluate/sft.json"],
                 ["data/eval/sft/generations.parquet", "data/eval/sft/scores.parquet", "metrics/evaluate/sft.json"]),
    "compare": ("compare", ["--metrics-dir", "metrics/evaluate", "--eval-dir", "data/eval", "--report",
                            "reports/comparison.md", "--png", "reports/tradeoff.png", "--plot-data",
                            "metrics/tradeoff.json", "--metrics", "metrics/compare.json"],
                ["reports/comparison.md", "reports/tradeoff.png", "metrics/tradeoff.json", "metrics/compare.json"]),
}
STAGES["compare-header"] = ("compare", [*STAGES["compare"][1], "--scorers-metrics", "metrics/scorers.json"],
                            STAGES["compare"][2])
CACHES = ("data/augment/.work/", "checkpoints/")
"""Resume caches, not outputs: a failed run may leave its finished (verified) chunks and checkpoints there."""


def _cases() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in CASES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            stage, target, corruption, expected = line.split("\t")
            rows.append((stage, target, corruption, expected))
    return rows


# --- corruptions: each changes one file (or folder) in place ---------------------------------

def _jsonl(path: Path, change: Callable[[list[dict]], list[dict]]) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(rows)))


def _frame(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _set_all(rows: list[dict], key: str, value) -> list[dict]:
    return [r | {key: value} for r in rows]


def _corrupt(path: Path, corruption: str) -> None:
    jsonl = path.suffix == ".jsonl"
    if corruption == "missing":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif corruption == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif corruption == "invalid_json":
        path.write_text('{"not": json')
    elif corruption == "invalid_json_line":
        lines = path.read_text().splitlines(keepends=True)
        path.write_text(lines[0] + '{"id": "x", "post": \n' + "".join(lines[2:]))
    elif corruption.startswith("no_") and corruption.endswith("_column"):
        column = corruption.removeprefix("no_").removesuffix("_column")
        if jsonl:
            _jsonl(path, lambda rows: [{k: v for k, v in r.items() if k != column} for r in rows])
        else:
            _frame(path, lambda df: df.drop(columns=column))
    elif corruption == "duplicate_ids":
        if jsonl:
            _jsonl(path, lambda rows: _set_all(rows, "id", rows[0]["id"]))
        else:
            _frame(path, lambda df: df.assign(id=[df["id"][0], *df["id"][:-1]]))
    elif corruption == "empty_ids":
        if jsonl:
            _jsonl(path, lambda rows: _set_all(rows, "id", ""))
        else:
            _frame(path, lambda df: df.assign(id=[df["id"][0], "", *df["id"][2:]]))
    elif corruption == "non_text_posts":
        if jsonl:
            _jsonl(path, lambda rows: _set_all(rows, "post", 5))
        else:
            _frame(path, lambda df: df.assign(post=1.0))
    elif corruption == "zero_rows":
        _frame(path, lambda df: df.iloc[:0])
    elif corruption == "invalid_utf8":
        lines = path.read_bytes().splitlines(keepends=True)
        lines[min(1, len(lines) - 1)] = b"\xe9\xff" + lines[min(1, len(lines) - 1)]
        path.write_bytes(b"".join(lines))
    elif corruption == "json_list":
        path.write_text(json.dumps([json.loads(path.read_text())]))
    elif corruption.startswith("drop:"):
        data = json.loads(path.read_text())
        *parents, last = corruption.removeprefix("drop:").split(".")
        part = data
        for k in parents:
            part = part[k]
        del part[last]
        path.write_text(json.dumps(data))
    elif corruption.startswith("drop_tensor:"):
        tensors = load_file(path)
        del tensors[corruption.removeprefix("drop_tensor:")]
        save_file(tensors, path)
    elif corruption == "duplicate_row":
        _frame(path, lambda df: pd.concat([df, df.iloc[:1]], ignore_index=True))
    elif corruption == "duplicate_post_id":
        _frame(path, lambda df: df.assign(post_id=[df["post_id"][0], *df["post_id"][:-1]]))
    elif corruption == "auto_map":  # a model with custom code: transformers would ask "run custom code? [y/N]"
        config = json.loads(path.read_text())
        config |= {"model_type": "aligntax-custom", "auto_map": {"AutoConfig": "configuration_x.XConfig",
                                                                  "AutoModelForCausalLM": "modeling_x.XModel"}}
        path.write_text(json.dumps(config))
    elif corruption != "enospc":  # enospc: a write fails (``_disk_full``), the file itself is not touched
        raise ValueError(f"files.tsv: unknown corruption '{corruption}'")


def _disk_full(monkeypatch, target: Path) -> None:
    """Every write into ``target`` (its temporary file or folder, or a file inside it) writes a few bytes,
    then fails like a full disk: OSError ENOSPC naming no file, as a failing write() does."""
    target = target.absolute()

    def hits(dest) -> bool:
        dest = Path(dest).absolute()
        return dest == target or target in dest.parents or any(
            p.parent == target.parent and p.name.startswith(f".{target.name}.") for p in (dest, *dest.parents))

    def wrap(original):
        def write(obj, dest, *args, **kwargs):
            where = dest if isinstance(dest, (str, Path)) else getattr(obj, "where", None)
            if where is not None and hits(where):
                Path(where).write_bytes(b"PAR1" * 16) if Path(where).parent.is_dir() else None
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(obj, dest, *args, **kwargs)
        return write

    def write_text(self, data, *args, **kwargs):
        if hits(self):
            original_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_write_text(self, data, *args, **kwargs)

    original_write_text = Path.write_text
    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(pq, "write_table", wrap(pq.write_table))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", wrap(pq.ParquetWriter.write_table))
    monkeypatch.setattr(torch, "save", wrap(torch.save))
    monkeypatch.setattr(aligntax.models, "save_file", wrap(aligntax.models.save_file))
    monkeypatch.setattr(Figure, "savefig", wrap(Figure.savefig))


# --- good workspaces -------------------------------------------------------------------------

def _params() -> dict:
    params = copy.deepcopy(read_params(ROOT / "params.yaml"))
    params["data"] |= {"n_train": 8, "n_eval": 4, "min_train": 4, "min_eval": 4}
    params["toxify"] |= {"strategies": ["lexicon"], "chunk_size": 2}
    params["backtranslate"] |= {"meaning_filter": "none"}
    params["evaluate"] |= {"n_posts": 2}
    params["train"] |= {"grad_accum": 1, "save_steps": 2, "logging_steps": 2}  # 4 steps, a checkpoint every 2
    params["scoring"]["faithfulness"] |= {"backend": "overlap"}  # the toxicity head is the one fitted here
    params["methods"] = {"sft": "models/sft", "contrastive": "models/contrastive"}
    del params["seeds"]  # one run per method: no models/<method>-s<seed> here
    return params


def _scores(method: str) -> pd.DataFrame:
    values = {f.name: ([0.1, 0.2] if pa.types.is_floating(f.type) else [3, 4] if pa.types.is_integer(f.type)
                       else [False, True] if pa.types.is_boolean(f.type) else ["a", "b"]) for f in SCORES.schema}
    return pd.DataFrame(values | {"method": method})


def _preferences(method: str) -> pd.DataFrame:
    rows = [{"post_id": post, "method": method, "axis": axis, "kind": kind, "good": "reference",
             "margin_sum": m, "margin_mean": m / 4, "margin": m, "preferred": m > 0}
            for post, shift in (("a", 0.0), ("b", 0.5), ("c", -0.2))
            for axis, kind, m in (("entity", "swap_ent", 1.0 + shift), ("toxic", "toxic_lexicon", 0.3 - shift))]
    return pd.DataFrame(rows)


def _likelihoods(method: str) -> pd.DataFrame:
    return pd.DataFrame([{"post_id": post, "method": method, "kind": "reference", "role": "positive", "text": "t",
                          "logprob_sum": -20.0 + shift, "n_tokens": 10} for post, shift in (("a", 0.0), ("b", 1.0))])


def _toxicity_head(folder: Path) -> None:
    names = ToxicityFeatures.names()
    coef = np.zeros(len(names))
    coef[names.index("profanity_check")] = 1.0
    LinearHead(np.zeros(len(names)), np.ones(len(names)), coef, 0.0, names, {}).save(folder, TOXICITY_HEAD)


@pytest.fixture(scope="module")
def workspace(tiny_llama_dir, tmp_path_factory) -> Path:
    """One folder with the good inputs of every stage in the corpus and stand-ins for their outputs."""
    ws = tmp_path_factory.mktemp("files")
    (ws / "params.yaml").write_text(yaml.safe_dump(_params()))
    sample = ws / "data" / "sample" / "tldr_sample.jsonl"
    sample.parent.mkdir(parents=True)
    sample.write_text("".join((ROOT / "data" / "sample" / "tldr_sample.jsonl").read_text().splitlines(True)[:24]))
    for path, df in ((RAW_TRAIN, POSTS), (RAW_EVAL, POSTS.assign(id=POSTS["id"] + "-eval")), (CASED, POSTS)):
        (ws / path).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(ws / path, index=False)
    shutil.copytree(tiny_llama_dir, ws / "models" / "base")
    _toxicity_head(ws / "models" / "scorers")
    (ws / "metrics").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "metrics" / "scorers.json", ws / "metrics" / "scorers.json")
    for method in ("sft", "contrastive"):
        (ws / "metrics" / "evaluate").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "metrics" / "evaluate" / f"{method}.json", ws / "metrics" / "evaluate" / f"{method}.json")
        (ws / "data" / "eval" / method).mkdir(parents=True, exist_ok=True)
        _scores(method).to_parquet(ws / "data" / "eval" / method / "scores.parquet", index=False)
        _preferences(method).to_parquet(ws / "data" / "eval" / method / "preferences.parquet", index=False)
        _likelihoods(method).to_parquet(ws / "data" / "eval" / method / "likelihoods.parquet", index=False)
    for _, _, outputs in STAGES.values():
        for out in outputs:
            if not (ws / out).exists():
                (ws / out).parent.mkdir(parents=True, exist_ok=True)
                (ws / out).write_bytes(f"previous {out}\n".encode())
    shutil.copytree(tiny_llama_dir, ws / "models" / "sft", dirs_exist_ok=True)  # evaluate reads it, train replaces it
    return ws


def _md5s(folder: Path) -> dict[str, str]:
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
    return {rel: hashlib.md5((folder / rel).read_bytes()).hexdigest()
            for rel in (p.relative_to(folder).as_posix() for p in files) if not rel.startswith(CACHES)}


@pytest.mark.parametrize("stage, target, corruption, expected", _cases(), ids=lambda x: str(x)[:30])
def test_bad_file_ends_in_its_message_and_keeps_outputs(workspace, tmp_path, monkeypatch, capsys,
                                                        stage, target, corruption, expected):
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    module, args, outputs = STAGES[stage]
    _corrupt(ws / target, corruption)
    before = _md5s(ws)
    monkeypatch.chdir(ws)
    if corruption == "enospc":
        _disk_full(monkeypatch, ws / target)
    monkeypatch.setattr(sys, "argv", [f"stages.{module}", *args])
    main = importlib.import_module(f"stages.{module}").main
    with pytest.raises(SystemExit) as exit_:
        try:
            cli.run(main)
        except Exception as err:  # noqa: BLE001 - what the corpus exists to catch
            pytest.fail(f"{stage}: raw {type(err).__name__} instead of one message: {err}")
    err = capsys.readouterr().err
    errors = re.findall(r"error: [^\r\n]*", err)  # tqdm may share its line
    assert exit_.value.code == 1 and len(errors) == 1, err[-2000:]
    assert expected in errors[0] and "Traceback" not in err, errors[0]
    assert "[y/N]" not in err  # no prompt, ever
    after = _md5s(ws)
    assert {o: after.get(o) for o in outputs} == {o: before.get(o) for o in outputs}  # previous outputs kept
    assert after == before  # nothing partial or new written (the corrupted input itself is untouched too)


def test_the_corpus_is_large_and_covers_the_stages():
    cases = _cases()
    assert len(cases) >= 50 and len(set(cases)) == len(cases)
    assert {stage for stage, *_ in cases} == set(STAGES)

"""Resume from a truncated artifact: a chunk or a checkpoint is reused only when its content verifies.

Before: a toxify chunk truncated after it was written was trusted, so every re-run failed reading
it; a checkpoint truncated by a kill during its save was trusted (its trainer_state.json existed)
and every resume raised SafetensorError. Now each is deleted with one log line and redone, and the
result equals an uninterrupted run.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_bad_files_corpus import STAGES, _md5s, workspace  # noqa: F401 - the corpus's toxify workspace

import aligntax.augment.toxify as toxify
from aligntax import cli
from aligntax.augment.chunks import run_chunked
from aligntax.io import write_json, write_parquet
from aligntax.models import ModelConfig
from aligntax.schema import TOXIC
from aligntax.train import sft
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.resume import CHECKSUMS, verified
from aligntax.train.trainer import AlignTrainer, TrainConfig
from stages import toxify as toxify_stage

RAW = pd.DataFrame({
    "id": ["a", "b", "c", "d"], "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
    "post": ["my cat knocked water on my laptop.", "we drove to new york and got lost.",
             "i dropped my phone in the toilet.", "locked out in the rain, called my mom."],
    "summary": ["cat spilled water", "got lost in new york", "phone in toilet", "locked out"],
})
TRAIN = dict(epochs=2, grad_accum=1, lr=1e-2, warmup_ratio=0.0, logging_steps=1, max_prompt_tokens=40,
             trainable="full", save_steps=2, resume=True)  # 8 steps, a checkpoint every 2


def _toxify(ws: Path, monkeypatch, capsys) -> tuple[int, str]:
    module, args, _ = STAGES["toxify"]
    monkeypatch.chdir(ws)
    monkeypatch.setattr(sys, "argv", [f"stages.{module}", *args])
    try:
        cli.run(toxify_stage.main)
    except SystemExit as exit_:
        return exit_.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_a_truncated_chunk_is_redone_and_the_output_kept_until_then(workspace, tmp_path, monkeypatch, capsys,  # noqa: F811
                                                                    caplog):
    clean, ws = tmp_path / "clean", tmp_path / "ws"
    shutil.copytree(workspace, clean)
    shutil.copytree(workspace, ws)
    assert _toxify(clean, monkeypatch, capsys)[0] == 0
    before = _md5s(ws)

    original = toxify.toxify_chunk

    def stopped(chunk, index, *args, **kwargs):  # the run stops in chunk 1, after chunk 0 was written
        if index == 1:
            raise RuntimeError("stopped in chunk 1")
        return original(chunk, index, *args, **kwargs)

    monkeypatch.setattr(toxify, "toxify_chunk", stopped)
    code, err = _toxify(ws, monkeypatch, capsys)
    assert code == 1 and "error: stopped in chunk 1" in err
    assert _md5s(ws) == before  # toxic.parquet and its metrics: the previous ones
    (chunk,) = (ws / "data" / "augment" / ".work").rglob("chunk-00000.parquet")
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])  # truncated after it finished

    monkeypatch.setattr(toxify, "toxify_chunk", original)
    with caplog.at_level(logging.INFO, logger="aligntax"):
        assert _toxify(ws, monkeypatch, capsys)[0] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("aligntax")]
    assert len(warnings) == 1 and "chunk-00000.parquet does not match the hash" in warnings[0]
    for out in STAGES["toxify"][2]:  # byte-identical to a run that was never interrupted (but for wall seconds)
        if out.endswith(".json"):
            timeless = [{k: v for k, v in json.loads((d / out).read_text()).items() if k != "seconds"} for d in (ws, clean)]
            assert timeless[0] == timeless[1], out
        else:
            assert filecmp.cmp(ws / out, clean / out, shallow=False), out
    assert not (ws / "data" / "augment" / ".work" / "train" / "toxify").exists()


def test_chunks_without_a_record_or_edited_are_redone(tmp_path, caplog):
    posts = RAW.assign(post_id=RAW["id"])
    calls: list[int] = []

    def process(chunk: pd.DataFrame, index: int) -> tuple[pd.DataFrame, dict]:
        calls.append(index)
        rows = pd.DataFrame({"post_id": chunk["id"], "kind": "toxic_lexicon", "text": chunk["summary"] + " damn",
                             "toxicity": 0.9})
        return rows, {"rows": len(rows)}

    def run(out: str) -> dict:
        chunks = (posts.iloc[i:i + 2] for i in range(0, 4, 2))
        return run_chunked(chunks, 4, 2, process, TOXIC, tmp_path / "work", tmp_path / out)

    whole = run("whole.parquet")
    for index in (0, 1):  # leave two finished chunks behind, as a killed run would
        rows, counts = process(posts.iloc[2 * index:2 * index + 2], index)
        path = tmp_path / "work" / f"chunk-{index:05d}.parquet"
        write_parquet(rows, path, TOXIC)
        digest = "0" * 64 if index else hashlib.sha256(path.read_bytes()).hexdigest()  # chunk 1: edited since
        write_json({"sha256": digest, "counts": counts}, path.with_suffix(".json"))
    calls.clear()
    with caplog.at_level(logging.INFO, logger="aligntax"):
        assert run("again.parquet") == whole
    assert calls == [1]  # chunk 0 verified and reused; chunk 1's recorded hash is wrong: redone
    assert "chunk-00001.parquet does not match the hash" in caplog.text
    assert filecmp.cmp(tmp_path / "whole.parquet", tmp_path / "again.parquet", shallow=False)


def _inputs(base: Path, tmp_path: Path, tag: str) -> TrainInputs:
    return TrainInputs(base, RAW, TrainConfig(**TRAIN), ModelConfig(prompt_template="post: {post} tl;dr:"), 0,
                       tmp_path / tag / "model", checkpoint_dir=tmp_path / tag / "ckpt",
                       live_dir=tmp_path / tag / "live")


def _same_files(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert [f for f in files if not filecmp.cmp(a / f, b / f, shallow=False)] == []


@pytest.mark.parametrize("damage", ["truncated", "no_checksums"])
def test_a_truncated_checkpoint_is_deleted_and_training_resumes_before_it(tiny_llama_dir, tmp_path, monkeypatch,
                                                                          caplog, damage):
    whole = train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "whole"))
    original = AlignTrainer.training_step

    def stopped(self, *args, **kwargs):  # the run ends after checkpoint-4 was saved, as a kill would end it
        if self.state.global_step == 5:
            raise RuntimeError("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AlignTrainer, "training_step", stopped)
    with pytest.raises(RuntimeError, match="killed"):
        train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "run"))
    ckpt = tmp_path / "run" / "ckpt"
    assert verified(ckpt / "checkpoint-2") and verified(ckpt / "checkpoint-4")
    assert not (tmp_path / "run" / "live").exists() and not (tmp_path / "run" / "model").exists()
    if damage == "truncated":  # what a kill during the save leaves: a short weights file
        weights = ckpt / "checkpoint-4" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:  # killed after the Trainer wrote the checkpoint, before its checksums
        (ckpt / "checkpoint-4" / CHECKSUMS).unlink()

    monkeypatch.setattr(AlignTrainer, "training_step", original)
    with caplog.at_level(logging.INFO, logger="aligntax"):
        resumed = train_method(sft, None, _inputs(tiny_llama_dir, tmp_path, "run"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("aligntax")]
    assert len(warnings) == 1 and "checkpoint-4: its files do not match the checksums" in warnings[0]
    assert "resuming from" in caplog.text and "checkpoint-2" in caplog.text and resumed["resumed"]
    assert {k: v for k, v in resumed.items() if k not in ("seconds", "resumed")} == \
        {k: v for k, v in whole.items() if k not in ("seconds", "resumed")}
    _same_files(tmp_path / "run" / "model", tmp_path / "whole" / "model")  # byte-identical model
    _same_files(tmp_path / "run" / "live", tmp_path / "whole" / "live")  # and curves

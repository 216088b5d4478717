import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aligntax import distributed
from aligntax.augment.chunks import RAW_INPUT, AlignedReader, add_counts, iter_chunks, run_stage
from aligntax.schema import TOXIC, SchemaError


def raw(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "post": [f"post {i}" for i in range(n)],
                         "summary": [f"summary {i}" for i in range(n)], "subreddit": "tifu", "title": "t"})


def process_factory(calls: list):
    def process(chunk: pd.DataFrame, index: int):
        calls.append(index)
        rows = pd.DataFrame({"post_id": chunk["id"], "kind": "toxic_lexicon", "text": chunk["summary"] + " damn",
                             "toxicity": [0.5] * len(chunk)})
        return rows, {"posts": {"read": len(chunk)}}
    return process


def test_resume_after_kill_gives_identical_output(tmp_path):
    train = tmp_path / "train.parquet"
    raw(10).to_parquet(train)
    calls: list = []
    ref = run_stage("s", ["cfg"], 0, train, [], 3, process_factory(calls), TOXIC, tmp_path / "w", tmp_path / "a.parquet")
    assert calls == [0, 1, 2, 3] and ref == {"posts": {"read": 10}}
    assert not (tmp_path / "w" / "s").exists()

    def killed(chunk, index):
        if index == 2:
            raise KeyboardInterrupt
        return process_factory(calls)(chunk, index)

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", ["cfg"], 0, train, [], 3, killed, TOXIC, tmp_path / "w", tmp_path / "b.parquet")
    assert calls == [0, 1] and not (tmp_path / "b.parquet").exists()
    calls.clear()
    again = run_stage("s", ["cfg"], 0, train, [], 3, process_factory(calls), TOXIC, tmp_path / "w", tmp_path / "b.parquet")
    assert calls == [2, 3] and again == ref
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "b.parquet").num_row_groups == 4


def test_changed_config_does_not_reuse_chunks(tmp_path):
    train = tmp_path / "train.parquet"
    raw(4).to_parquet(train)
    calls: list = []

    def killed(chunk, index):
        if index == 1:
            raise KeyboardInterrupt
        return process_factory(calls)(chunk, index)

    with pytest.raises(KeyboardInterrupt):
        run_stage("s", ["v1"], 0, train, [], 2, killed, TOXIC, tmp_path / "w", tmp_path / "o")
    assert calls == [0]
    calls.clear()
    run_stage("s", ["v2"], 0, train, [], 2, process_factory(calls), TOXIC, tmp_path / "w", tmp_path / "o")
    assert calls == [0, 1]


def as_process(monkeypatch, index: int, world: int) -> None:
    """Make aligntax.distributed answer as process ``index`` of ``world`` (the barrier passes at once)."""
    monkeypatch.setattr(distributed, "rank", lambda: index)
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    monkeypatch.setattr(distributed, "is_main", lambda: index == 0)
    monkeypatch.setattr(distributed, "barrier", lambda: None)


def test_processes_split_the_chunks_and_only_the_main_one_writes(tmp_path, monkeypatch):
    train = tmp_path / "train.parquet"
    raw(7).to_parquet(train)
    ref = run_stage("s", [], 0, train, [], 2, process_factory([]), TOXIC, tmp_path / "w", tmp_path / "ref.parquet")
    calls: dict = {}
    for k in (2, 1, 0):  # process 0 last: in a real run the barrier holds it until the others are done
        as_process(monkeypatch, k, 3)
        calls[k] = []
        out = run_stage("s", [], 0, train, [], 2, process_factory(calls[k]), TOXIC, tmp_path / "w",
                        tmp_path / "o.parquet")
        assert (out is None) == (k > 0) and (tmp_path / "o.parquet").exists() == (k == 0)
    assert calls == {0: [0, 3], 1: [1], 2: [2]} and out == ref
    assert (tmp_path / "o.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert not (tmp_path / "w" / "s").exists()


def test_a_chunk_missing_after_the_barrier_is_one_clear_error(tmp_path, monkeypatch):
    train = tmp_path / "train.parquet"
    raw(4).to_parquet(train)
    as_process(monkeypatch, 0, 2)  # process 1 never ran: its chunk is missing
    with pytest.raises(RuntimeError, match="chunk missing after every process finished"):
        run_stage("s", [], 0, train, [], 2, process_factory([]), TOXIC, tmp_path / "w", tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_bad_input_fails_before_any_work(tmp_path):
    bad = tmp_path / "bad.parquet"
    raw(3).drop(columns="summary").to_parquet(bad)
    calls: list = []
    with pytest.raises(SchemaError, match="'summary' is missing"):
        run_stage("s", [], 0, bad, [], 2, process_factory(calls), TOXIC, tmp_path / "w", tmp_path / "o.parquet")
    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"id": ["a"], "post": [1.0], "summary": ["s"], "subreddit": ["x"], "title": ["t"]}), typed)
    with pytest.raises(SchemaError, match="'post' has type double"):
        run_stage("s", [], 0, typed, [], 2, process_factory(calls), TOXIC, tmp_path / "w", tmp_path / "o.parquet")
    with pytest.raises(SchemaError, match="file not found"):
        list(iter_chunks(tmp_path / "missing.parquet", RAW_INPUT, 2))
    assert calls == [] and not (tmp_path / "o.parquet").exists()


def test_empty_summaries_are_not_fatal_for_the_augment_input(tmp_path):
    df = raw(3)
    df.loc[1, "summary"] = ""
    df.loc[2, "summary"] = None
    df.to_parquet(tmp_path / "t.parquet")
    assert sum(len(c) for c in iter_chunks(tmp_path / "t.parquet", RAW_INPUT, 2)) == 3


def test_aligned_reader_hands_out_rows_per_chunk(tmp_path):
    rows = pd.DataFrame({"post_id": ["a", "a", "c", "d", "d", "d"], "kind": "toxic_lm", "text": list("uvwxyz"),
                         "toxicity": 0.9})
    rows.to_parquet(tmp_path / "r.parquet")
    reader = AlignedReader(tmp_path / "r.parquet", TOXIC, batch_size=2)
    assert list(reader.take(["a", "b"])["text"]) == ["u", "v"]
    assert list(reader.take(["c"])["text"]) == ["w"]
    assert list(reader.take(["d", "e"])["text"]) == ["x", "y", "z"]
    reader.finish()
    stray = AlignedReader(tmp_path / "r.parquet", TOXIC)
    assert reader.take(["zz"]).empty
    stray.take(["a"])
    with pytest.raises(ValueError, match="not in its order"):
        stray.finish()


def test_add_counts_nests():
    total = add_counts({}, {"a": 1, "b": {"x": 2}})
    add_counts(total, {"a": 2, "b": {"x": 1, "y": 1}})
    assert json.dumps(total, sort_keys=True) == '{"a": 3, "b": {"x": 3, "y": 1}}'


def test_fingerprint_covers_code_and_input_folders_and_refuses_missing_inputs(tmp_path, monkeypatch):
    from aligntax.augment import chunks

    code = tmp_path / "code"
    code.mkdir()
    (code / "m.py").write_text("x = 1\n")
    monkeypatch.setattr(chunks, "CODE", code)
    scorers = tmp_path / "scorers"
    scorers.mkdir()
    (scorers / "head.json").write_text("{}")
    first = chunks.fingerprint("toxify", ["cfg"], 0, [scorers])
    assert chunks.fingerprint("toxify", ["cfg"], 0, [scorers]) == first
    (scorers / "head.json").write_text('{"w": 1}')
    changed_scorer = chunks.fingerprint("toxify", ["cfg"], 0, [scorers])
    (code / "m.py").write_text("x = 2\n")
    changed_code = chunks.fingerprint("toxify", ["cfg"], 0, [scorers])
    assert len({first, changed_scorer, changed_code}) == 3
    with pytest.raises(FileNotFoundError, match="missing: input not found"):
        chunks.fingerprint("toxify", ["cfg"], 0, [tmp_path / "missing"])


def test_lm_folders_are_fingerprint_inputs_for_base_and_local_folders_not_hub_ids(tmp_path):
    from aligntax.augment.lm import lm_folders

    local = tmp_path / "my-lm"
    local.mkdir()
    assert lm_folders("base", "models/base") == [Path("models/base")]
    assert lm_folders(str(local), "models/base") == [local]
    assert lm_folders("EleutherAI/gpt-neo-2.7B", "models/base") == []

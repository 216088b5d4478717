import hashlib

import pandas as pd
import pytest

from aligntax.io import atomic_dir, file_digest, read_parquet, write_json, write_parquet
from aligntax.schema import GROUPS, RAW, SchemaError


def raw_df(**over):
    data = {"id": ["a", "b"], "post": ["p one.", "p two."], "summary": ["s1", "s2"],
            "subreddit": ["tifu", None], "title": [None, None]}
    data.update(over)
    return pd.DataFrame(data)


def test_roundtrip_keeps_schema_and_values(tmp_path):
    path = tmp_path / "raw.parquet"
    write_parquet(raw_df(), path, RAW)
    back = read_parquet(path, RAW)
    assert list(back.columns) == RAW.columns
    assert back["summary"].tolist() == ["s1", "s2"]


def test_missing_column_names_file_column_and_fix(tmp_path):
    path = tmp_path / "raw.parquet"
    raw_df().drop(columns="summary").to_parquet(path)
    with pytest.raises(SchemaError) as err:
        read_parquet(path, RAW)
    msg = str(err.value)
    assert str(path) in msg and "'summary' is missing" in msg and "dvc repro download" in msg


def test_empty_text_and_wrong_type_and_bad_enum(tmp_path):
    path = tmp_path / "raw.parquet"
    raw_df(post=["ok", "  "]).to_parquet(path)
    with pytest.raises(SchemaError, match="column 'post' has 1 empty or non-text value"):
        read_parquet(path, RAW)
    raw_df(summary=[1, 2]).to_parquet(path)
    with pytest.raises(SchemaError, match="column 'summary' has type int64, expected string"):
        read_parquet(path, RAW)
    groups = pd.DataFrame({"post_id": ["a"], "role": ["neutral"], "kind": ["reference"], "text": ["t"],
                           "entity_spans": [[]], "toxicity": [0.1]})
    gpath = tmp_path / "groups.parquet"
    with pytest.raises(SchemaError, match="column 'role' has value 'neutral'; allowed: positive, negative"):
        write_parquet(groups, gpath, GROUPS)  # a stage never writes what its readers would reject
    assert not gpath.exists()
    groups.to_parquet(gpath)
    with pytest.raises(SchemaError, match="column 'role' has value 'neutral'; allowed: positive, negative"):
        read_parquet(gpath, GROUPS)


def test_missing_and_unreadable_file(tmp_path):
    with pytest.raises(SchemaError, match="file not found; create it with `dvc repro download`"):
        read_parquet(tmp_path / "nope.parquet", RAW)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match="not a readable parquet file"):
        read_parquet(tmp_path / "junk.parquet", RAW)


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "raw.parquet"
    write_parquet(raw_df(), path, RAW)
    before = path.read_bytes()
    import pyarrow.parquet as pq

    def boom(table, where):
        open(where, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        write_parquet(raw_df(summary=["x", "y"]), path, RAW)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.parquet"]


def test_failed_json_and_dir_writes_leave_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_json({"x": object()}, tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("crash")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_raw_posts_need_rows_and_unique_ids(tmp_path):
    from aligntax.io import read_parquet, write_parquet
    from aligntax.schema import RAW

    good = pd.DataFrame({"id": ["a", "b"], "post": ["p", "q"], "summary": ["s", "t"],
                         "subreddit": [None, None], "title": [None, None]})
    write_parquet(good, tmp_path / "ok.parquet", RAW)
    assert read_parquet(tmp_path / "ok.parquet", RAW)["id"].tolist() == ["a", "b"]
    with pytest.raises(SchemaError, match=r"e.parquet: the raw posts file has 0 rows, at least 1 needed"):
        write_parquet(good.iloc[:0], tmp_path / "e.parquet", RAW)
    assert not (tmp_path / "e.parquet").exists()
    good.iloc[:0].to_parquet(tmp_path / "e.parquet")
    with pytest.raises(SchemaError, match="0 rows"):
        read_parquet(tmp_path / "e.parquet", RAW)
    dup = good.assign(id=["a", "a"])
    with pytest.raises(SchemaError, match=r"column 'id' repeats 1 value\(s\) \(first 'a'\)"):
        write_parquet(dup, tmp_path / "d.parquet", RAW)


def test_file_digest_hashes_the_bytes_with_the_named_algorithm(tmp_path):
    data = bytes(range(256)) * 5000  # > one read block
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert file_digest(tmp_path / "f", "md5") == hashlib.md5(data).hexdigest()
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "missing")

import subprocess
import sys
from pathlib import Path

import datasets
import pandas as pd
import pytest

from aligntax.data.download import (
    DataConfig,
    DownloadError,
    count_tokens,
    download,
    map_fields,
    parse_tldr_prompt,
    truncate_at_sentence,
)
from aligntax.text import sentence_spans

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


def test_sentence_spans_and_truncation_at_boundary():
    text = "i went out. it rained!\nthen i \"slipped.\" the end"
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert spans == ["i went out.", "it rained!", 'then i "slipped."', "the end"]
    cut, was_cut = truncate_at_sentence(text, 7)
    assert was_cut and cut == "i went out. it rained!"
    assert count_tokens(cut) <= 7
    same, was_cut = truncate_at_sentence("short one.", 50)
    assert (same, was_cut) == ("short one.", False)
    long_first, was_cut = truncate_at_sentence("a " * 30 + "end.", 5)
    assert was_cut and long_first == "a a a a a"


def test_parse_openai_style_prompt():
    p = "SUBREDDIT: r/tifu\nTITLE: lost keys\nPOST: i lost my keys.\nagain.\nTL;DR:"
    assert parse_tldr_prompt(p) == {"subreddit": "tifu", "title": "lost keys", "post": "i lost my keys.\nagain."}


def test_map_fields_layouts_and_unknown_layout():
    webis = pd.DataFrame({"id": [1], "content": ["post"], "summary": ["s"], "subreddit": ["x"], "title": ["t"]})
    assert map_fields(webis, "w").iloc[0].to_dict() == {"id": "1", "post": "post", "summary": "s", "subreddit": "x", "title": "t"}
    trl = pd.DataFrame({"prompt": ["SUBREDDIT: r/a\nTITLE: b\nPOST: c\nTL;DR:"], "completion": [" d"]})
    row = map_fields(trl, "trl").iloc[0].to_dict()
    assert row == {"id": "trl-0", "post": "c", "summary": " d", "subreddit": "a", "title": "b"}
    with pytest.raises(DownloadError, match="unknown column layout \\['body', 'text'\\]"):
        map_fields(pd.DataFrame({"text": ["x"], "body": ["y"]}), "bad")


def test_sample_download_is_deterministic_and_accounts_for_rows():
    cfg = DataConfig(n_train=50, n_eval=20)
    train, evals, m = download(cfg, seed=3, sample_path=SAMPLE / "tldr_sample.jsonl")
    train2, _, _ = download(cfg, seed=3, sample_path=SAMPLE / "tldr_sample.jsonl")
    train3, _, _ = download(cfg, seed=4, sample_path=SAMPLE / "tldr_sample.jsonl")
    pd.testing.assert_frame_equal(train, train2)
    assert train["id"].tolist() != train3["id"].tolist()
    assert (len(train), len(evals)) == (50, 20)
    assert not set(train["id"]) & set(evals["id"])
    assert m["read"] == 1094
    assert m["read"] == sum(m["dropped"].values()) + 50 + 20 + m["unused_after_sampling"]
    assert m["dropped"]["summary_without_words"] >= 1  # the sample has a "**" summary
    assert all(count_tokens(p) <= cfg.max_post_tokens for p in train["post"])


def test_hub_path_on_local_datasets(tmp_path):
    rows = {
        "id": ["a", "b", "c", "d", "e", "f"],
        "content": ["first post. it is long.", "second post.", "second post.", "", "fifth post.", "sixth."],
        "summary": ["s1", "s2", "s2 dup", "s4", "", "s6"],
        "subreddit": ["x"] * 6,
        "title": ["t"] * 6,
    }
    path = tmp_path / "ds"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(path)
    cfg = DataConfig(source=f"hf:{path}", n_train=0, n_eval=1, min_train=1, min_eval=1)
    train, evals, m = download(cfg, seed=0, sample_path="unused")
    assert m["dropped"]["duplicate_post"] == 1 and m["dropped"]["empty_post"] == 1 and m["dropped"]["empty_summary"] == 1
    assert len(train) + len(evals) == 3 and len(evals) == 1
    folder = tmp_path / "trl"
    folder.mkdir()
    pd.DataFrame({"prompt": ["SUBREDDIT: r/a\nTITLE: b\nPOST: my post.\nTL;DR:"] * 2,
                  "completion": [" one", " two"]}).to_json(folder / "train.jsonl", orient="records", lines=True)
    pd.DataFrame({"prompt": ["SUBREDDIT: r/a\nTITLE: b\nPOST: other post.\nTL;DR:"],
                  "completion": [" three"]}).to_json(folder / "test.jsonl", orient="records", lines=True)
    cfg = DataConfig(source=f"hf:{folder}", hf_eval_split="test", n_train=0, n_eval=0, min_train=1, min_eval=1)
    train, evals, m = download(cfg, seed=0, sample_path="unused")
    assert train["summary"].tolist() == ["one"] and evals["post"].tolist() == ["other post."]
    assert m["dropped"]["duplicate_post"] == 1


def test_unreachable_hub_dataset_says_how_to_switch_back(tmp_path):
    with pytest.raises(DownloadError, match="set data.source: sample"):
        download(DataConfig(source=f"hf:{tmp_path}/does-not-exist"), seed=0, sample_path="unused")


def test_stage_bad_params_exit_1_with_one_message_and_no_output(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\ndata:\n  source: sample\n  n_trian: 5\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "stages.download", "--params", str(params),
           "--train-out", str(out / "t.parquet"), "--eval-out", str(out / "e.parquet"), "--metrics", str(out / "m.json")]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        "error: params.yaml: unknown key 'data.n_trian'; allowed keys in 'data': source, hf_config, "
        "hf_train_split, hf_eval_split, n_train, n_eval, max_post_tokens, max_summary_tokens, min_train, min_eval")
    assert not out.exists()
    params.write_text("seed: 0\ndata:\n  n_train: 5\n  n_eval: 2\n  min_train: 1\n  min_eval: 1\n")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(pd.read_parquet(out / "t.parquet")) == 5 and len(pd.read_parquet(out / "e.parquet")) == 2


def _rows(ids: list) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "post": [f"post number {i} is here." for i in range(len(ids))],
                         "summary": [f"summary {i}" for i in range(len(ids))]})


def test_clean_drops_empty_and_repeated_ids_and_counts_them():
    from aligntax.data.download import clean

    mapped = map_fields(_rows(["a", "b", "a", None, "  ", "c"]), "t")
    rows, dropped = clean(mapped)
    assert rows["id"].tolist() == ["a", "b", "c"]
    assert dropped["duplicate_id"] == 1 and dropped["empty_id"] == 2


def test_download_ids_unique_and_disjoint_across_splits(tmp_path):
    ids = [f"p{i % 30}" for i in range(40)]  # 10 repeats
    path = tmp_path / "s.jsonl"
    _rows(ids).to_json(path, orient="records", lines=True)
    train, evals, m = download(DataConfig(n_train=0, n_eval=10), seed=0, sample_path=path)
    all_ids = train["id"].tolist() + evals["id"].tolist()
    assert len(all_ids) == len(set(all_ids)) == 30
    assert m["dropped"]["duplicate_id"] == 10


def test_too_few_usable_rows_is_one_error_naming_the_counts(tmp_path):
    path = tmp_path / "s.jsonl"
    _rows(["a", "b", "c"]).to_json(path, orient="records", lines=True)
    with pytest.raises(DownloadError, match=r"only 0 train and 3 eval posts.*data.min_train=8"):
        download(DataConfig(n_train=0, n_eval=100), seed=0, sample_path=path)


def test_a_word_without_spaces_is_cut_by_characters(tmp_path):
    df = _rows([f"p{i}" for i in range(20)])
    df.loc[0, "post"] = "x" * 1_000_000
    path = tmp_path / "s.jsonl"
    df.to_json(path, orient="records", lines=True)
    cfg = DataConfig(n_train=0, n_eval=8, max_post_tokens=216)
    train, evals, m = download(cfg, seed=0, sample_path=path)
    longest = max(len(p) for p in pd.concat([train, evals])["post"])
    assert longest == 216 * 16
    assert m["truncated"]["post_chars"] == 1

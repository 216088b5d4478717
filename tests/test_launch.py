"""stages/launch.py fills a stage's item into its arguments from $DVC_STAGE: `{name}` of a foreach
stage, `{method}` and `{seed}` of the seeds matrix, each checked."""

import pytest

from aligntax.config import ConfigError
from stages.launch import fill


def test_foreach_item_fills_name(monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@dpo")
    assert fill(["--method", "{name}", "--out", "models/{name}"], None) == ["--method", "dpo", "--out", "models/dpo"]


def test_matrix_item_fills_method_and_seed(monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "dvc.yaml:train-seed@sft-2")
    args = fill(["--method", "{method}", "--seed", "{seed}", "--out", "models/{method}-s{seed}"], None)
    assert args == ["--method", "sft", "--seed", "2", "--out", "models/sft-s2"]
    # a method name with '-' keeps it: the seed is the last part
    assert fill(["{method}", "{seed}"], "my-method-17") == ["my-method", "17"]


def test_arguments_without_placeholders_need_no_stage(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert fill(["--eval", "data/raw/eval.parquet"], None) == ["--eval", "data/raw/eval.parquet"]


@pytest.mark.parametrize(("stage", "message"), [("train-seed@sft", "<method>-<seed>"),
                                                 ("train-seed@sft-x", "<method>-<seed>"),
                                                 ("compare", "foreach stage"),
                                                 ("train-seed@sft;ls-1", "bad value for stage item")])
def test_bad_matrix_items_are_refused(monkeypatch, stage, message):
    monkeypatch.setenv("DVC_STAGE", stage)
    with pytest.raises(ConfigError, match=message):
        fill(["--method", "{method}", "--seed", "{seed}"], None)

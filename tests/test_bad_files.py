"""Corrupt or malformed files end in one error naming the file (and the line), not a traceback."""

import pickle
import struct

import pytest

from aligntax.io import read_jsonl
from aligntax.models import load_model
from aligntax.scoring.bilstm import KerasWordTokenizer


def test_jsonl_error_names_file_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(ValueError, match=r"s\.jsonl:3: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"s\.jsonl:2: expected one JSON object per line, got list"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_jsonl(path)["a"].tolist() == [1, 2]


def test_truncated_weights_and_invalid_config_are_one_error(tiny_llama_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_llama_dir, model_dir)
    weights = next(model_dir.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(RuntimeError, match=r"model files are unreadable .*dvc repro"):
        load_model(model_dir)
    shutil.copytree(tiny_llama_dir, tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=r"c: model files are unreadable"):
        load_model(tmp_path / "c")


def test_pickle_with_a_huge_length_is_one_error(tmp_path):
    path = tmp_path / "tokenizer.pickle"
    # BINUNICODE opcode announcing a 4 GB string that is not there
    path.write_bytes(b"\x80\x04" + b"X" + struct.pack("<I", 0xFFFFFFF0) + b"abc")
    with pytest.raises(RuntimeError, match=r"tokenizer.pickle: tokenizer pickle is unreadable"):
        KerasWordTokenizer(path)
    path.write_bytes(pickle.dumps({"word_index": {"a": 1}})[:5])  # truncated
    with pytest.raises(RuntimeError, match="unreadable"):
        KerasWordTokenizer(path)

"""Fast checks of the paper profile's pieces (part of `make test`): each hub TL;DR layout loads
offline through the real `datasets` cache path, check-params finds hub ids where each library
looks offline, and configs/profiles/paper.yaml applies to params.yaml and passes check-params."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standins  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APPLY = ROOT / "scripts" / "apply_profile.py"
PROFILE = ROOT / "configs" / "profiles" / "paper.yaml"


@pytest.fixture()
def hf_home(tmp_path, monkeypatch) -> Path:
    """An empty HF_HOME that `datasets` (imported already, so through its config) and flair read."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("FLAIR_CACHE_ROOT", str(tmp_path / "flair"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("aligntax.sections.try_to_load_from_cache", _cache_lookup(tmp_path / "hub"))
    return tmp_path


def _cache_lookup(default: Path):
    from huggingface_hub import try_to_load_from_cache

    return lambda repo, name, cache_dir=None, **kw: try_to_load_from_cache(repo, name, cache_dir=cache_dir or default, **kw)


@pytest.mark.parametrize("repo, eval_split", [
    ("dim/tldr_17_50k", None),
    ("webis/tldr-17", None),
    ("trl-lib/tldr", None),
    ("trl-lib/tldr", "validation"),
    ("CarperAI/openai_summarize_tldr", "valid"),
])
def test_each_hub_tldr_layout_loads_offline_into_posts_and_summaries(hf_home, repo, eval_split):
    from aligntax.data.download import DataConfig, download

    rows = pd.read_json(standins.SAMPLE, lines=True).tail(standins.N_POSTS)
    splits = standins.tldr_layouts(rows)[repo]
    standins.build_dataset(hf_home, repo, splits)
    cfg = DataConfig(source=f"hf:{repo}", hf_eval_split=eval_split, n_train=0, n_eval=8, min_eval=4)
    train, evals, metrics = download(cfg, 0, standins.SAMPLE)
    read = len(splits["train"]) + (len(splits[eval_split]) if eval_split else 0)
    assert metrics["read"] == read and metrics["source"] == f"hf:{repo}"
    wanted = min(8, len(splits[eval_split])) if eval_split else 8
    assert wanted - sum(metrics["dropped"].values()) <= len(evals) <= wanted  # clean() drops a row without words
    assert len(train) + len(evals) + metrics["unused_after_sampling"] + sum(metrics["dropped"].values()) == read
    if eval_split:  # the eval posts come from that split: the stand-in's last quarter
        last = set(rows["summary"].str.strip().iloc[standins.N_POSTS * 3 // 4:])
        assert set(evals["summary"]) <= last and not set(train["summary"]) & last
    by_summary = dict(zip(rows["summary"].str.strip(), rows["post"].str.strip(), strict=True))
    for frame in (train, evals):  # each post arrives whole (prompt layouts: without SUBREDDIT/TITLE/TL;DR)
        for post, summary in zip(frame["post"], frame["summary"], strict=True):
            assert summary in by_summary and by_summary[summary].startswith(post[:100])


def test_check_params_finds_each_kind_of_hub_id_where_its_library_looks_offline(hf_home):
    from aligntax.sections import in_local_cache

    assert not in_local_cache("dim/tldr_17_50k", "dataset")
    assert not in_local_cache(standins.FLAIR_NER, "flair")
    assert not in_local_cache(standins.LLAMA, "model")
    rows = pd.read_json(standins.SAMPLE, lines=True).tail(standins.N_POSTS)
    standins.build_dataset(hf_home, "dim/tldr_17_50k", standins.tldr_layouts(rows)["dim/tldr_17_50k"])
    (standins.snapshot(hf_home / "flair" / "models" / "ner-english-ontonotes-fast", standins.FLAIR_NER)
     / "pytorch_model.bin").write_bytes(b"stand-in")
    (standins.snapshot(hf_home / "hub", standins.LLAMA) / "config.json").write_text("{}")
    assert in_local_cache("dim/tldr_17_50k", "dataset")
    assert in_local_cache(standins.FLAIR_NER, "flair")
    assert in_local_cache(standins.LLAMA, "model")
    # a dataset's repo files alone (no prepared cache) are not enough: `datasets` offline reads only the latter
    webis = standins.snapshot(hf_home / "hub", "webis/tldr-17", "datasets")
    rows.to_parquet(webis / "train-00000-of-00001.parquet")
    assert not in_local_cache("webis/tldr-17", "dataset")


def test_the_paper_profile_applies_to_params_yaml_and_passes_check_params(tmp_path, monkeypatch):
    from aligntax import sections
    from aligntax.config import read_params

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    done = subprocess.run([sys.executable, str(APPLY), str(PROFILE), "--params", str(params)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = params.read_text()
    assert "# aligntax parameters" in text and "hf_config: null" in text  # comments and nulls survive
    applied = read_params(params)
    assert applied["model"]["name"] == "meta-llama/Llama-2-7b-hf" and applied["train"]["trainable"] == "lora"
    assert applied["backtranslate"]["pivots"] == ["de", "fr", "es"]
    assert applied["scoring"]["toxicity"]["threshold"] == 0.5  # merged, not replaced
    monkeypatch.setattr(sections, "in_local_cache", lambda repo, kind: True)
    sections.check_params(applied)


def test_a_profile_key_params_yaml_lacks_is_an_error_and_nothing_is_written(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: gpt2\ntrain:\n  trainabel: lora\n")
    done = subprocess.run([sys.executable, str(APPLY), str(bad), "--params", str(params)], capture_output=True, text=True)
    assert done.returncode != 0 and "'train.trainabel' is not a params.yaml key" in done.stderr
    assert params.read_text() == (ROOT / "params.yaml").read_text()


def test_prepare_model_drops_a_hub_models_sampling_defaults_so_greedy_decoding_is_greedy(tmp_path):
    import torch

    from aligntax.generation import generate_ids
    from aligntax.models import ModelConfig, load_model, load_tokenizer, prepare_base_model

    snapshot = standins.build_llama(tmp_path / "hub", standins.corpus(60))  # its generation_config samples
    assert load_model(snapshot).generation_config.do_sample
    prepare_base_model(ModelConfig(name=str(snapshot)), tmp_path / "base")
    model, tok = load_model(tmp_path / "base", dtype="float32"), load_tokenizer(tmp_path / "base")
    saved = model.generation_config
    assert not saved.do_sample and saved.temperature == 1.0 and saved.eos_token_id == 2
    prompt = ["Summarize this Reddit post in one sentence.\n\nPost: i lost my keys on monday.\n\nTL;DR:"]
    first, second = (generate_ids(model, tok, prompt, 6, 1, seed=s)[0] for s in (1, 2))
    with torch.no_grad():
        argmax = model(**tok(prompt, return_tensors="pt")).logits[0, -1].argmax().item()
    assert first == second and first[0] == argmax

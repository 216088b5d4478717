"""The paper profile (configs/profiles/paper.yaml) runs end to end: `dvc repro` of every stage and
every method, offline, on CPU, on hub-shaped stand-ins (tests/paper/standins.py) with a handful of
posts (tests/paper/cpu.yaml), in a temporary copy of the repository (tests/paper/pipeline.py).

    make test-paper        # this file only (about 10 minutes on 2 cores); docs/paper-profile.md

One pipeline run (module fixture) and several checks of it: every stage ran, every hub id the
profile names was loaded by the stages that need it, LoRA adapters reach every downstream stage as
merged weights, the bfloat16 base checkpoint is scored in float32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline  # noqa: E402
import standins  # noqa: E402

pytestmark = pytest.mark.paper

HUB_IDS = {
    standins.LLAMA: ("model.name", "prepare_model.py"),
    "dim/tldr_17_50k": ("data.source", "download.py"),
    standins.TOXIC_BERT: ("scoring.toxicity.backend", "evaluate.py"),
    standins.NLI: ("scoring.faithfulness.nli_model", "evaluate.py"),
    standins.GPT_NEO: ("toxify.lm_model", "toxify.py"),
    **{marian: ("backtranslate.marian_model", "backtranslate.py") for marian in standins.MARIAN},
    standins.FLAIR_NER: ("ner.model", "entity_perturb.py"),
}
"""Every hub id the paper profile names -> (its params key, a stage script that must have loaded it)."""
GPT2_STAGES = ["prepare-model", "train@sft", "train@contrastive", "fit-projection@inlp", "evaluate@inlp",
               "evaluate@self_debias"]
"""What tests/paper/gpt2.yaml runs again with model.name: gpt2 (the stages that depend on the model's shape)."""
METHODS = ["base", "sft", "contrastive", "cda", "dropout", "dpo", "unlikelihood", "inlp", "sentence_debias",
           "self_debias", "instructive"]
TRAINED = ["sft", "contrastive", "cda", "dropout", "dpo", "unlikelihood"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> pipeline.Run:
    """The pipeline run; ALIGNTAX_PAPER_RUN=<workdir> checks the run `python tests/paper/pipeline.py <workdir>` left."""
    finished = os.environ.get("ALIGNTAX_PAPER_RUN")
    result = pipeline.load(Path(finished)) if finished else pipeline.run(tmp_path_factory.mktemp("paper-run"))
    assert result.returncode == 0, f"dvc repro failed after {result.seconds:.0f} s:\n{result.log[-6000:]}"
    return result


def _json(run: pipeline.Run, name: str) -> dict:
    return json.loads((run.repo / name).read_text())


def test_every_stage_ran_and_the_pipeline_is_up_to_date(run):
    status = subprocess.run([str(pipeline.BIN / "dvc"), "status", "--quiet"], cwd=run.repo,
                            env=pipeline.environment(run.hf_home, run.trace), capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    lock = yaml.safe_load((run.repo / "dvc.lock").read_text())["stages"]
    stages = subprocess.run([str(pipeline.BIN / "dvc"), "stage", "list", "--name-only"], cwd=run.repo,
                            capture_output=True, text=True, check=True).stdout.split()
    assert set(stages) == set(lock), "a stage of dvc.yaml has no entry in dvc.lock (or one of dvc.lock no stage)"
    assert {f"evaluate@{m}" for m in METHODS} | {f"train@{m}" for m in TRAINED} <= set(lock)
    summary = _json(run, "metrics/summary.json")
    assert set(METHODS) <= set(json.dumps(summary).replace('"', " ").split())


def test_the_profile_names_exactly_these_hub_ids(run, monkeypatch):
    from aligntax import sections
    from aligntax.config import read_params

    monkeypatch.setattr(sections, "in_local_cache", lambda repo, kind: False)  # list them all, cached or not
    loaded = {name: sections.load_section(read_params(run.repo / "params.yaml"), name, cls)
              for name, cls in sections.SECTIONS.items()}
    named = {(key, repo) for key, repo in sections.hub_ids(loaded)}
    assert named == {(key, repo) for repo, (key, _) in HUB_IDS.items()}


def test_every_hub_id_was_loaded_from_the_offline_cache_by_its_stage(run):
    opened: dict[str, set[str]] = {}
    for line in run.trace.read_text().splitlines():
        who, path = line.split("\t")
        opened.setdefault(path, set()).add(who.split()[0])
    built = json.loads((run.hf_home / "standins.json").read_text())
    for repo, (_, stage) in HUB_IDS.items():
        folder = (run.hf_home / built[repo]).resolve()
        # the snapshot folder a model's files are read from (datasets: its prepared arrow cache)
        by = set().union(*[who for path, who in opened.items() if Path(path).is_relative_to(folder)] or [set()])
        assert stage in by, f"{repo}: no file of {folder} was opened by {stage} (opened by: {sorted(by) or 'none'})"


def test_the_data_came_from_the_hub_dataset(run):
    download = _json(run, "metrics/download.json")
    assert download["source"] == "hf:dim/tldr_17_50k" and download["read"] == standins.N_POSTS
    assert download["kept"]["eval"] == 8 and download["kept"]["train"] >= 8


def test_lora_adapters_reach_every_downstream_stage_merged(run):
    from safetensors.torch import load_file

    from aligntax.models import POINTER_FILE, load_model

    base = load_model(run.repo / "models" / "base", dtype="float32").state_dict()
    for method in TRAINED:
        folder = run.repo / "models" / method
        assert not (folder / "adapter_config.json").exists(), f"{method}: a peft adapter folder, not a model"
        saved = load_file(folder / "model.safetensors")
        assert saved and not any("lora_" in key for key in saved), f"{method}: unmerged LoRA tensors"
        assert (folder / POINTER_FILE).is_file()
        model = load_model(folder, dtype="float32").state_dict()
        moved = [k for k in saved if not model[k].equal(base[k])]
        assert moved, f"{method}: the merged LoRA weights equal the base's"
        metrics = _json(run, f"metrics/train_{method}.json")
        assert 0 < metrics["trainable_parameters"] < sum(v.numel() for v in base.values())
    # dpo's reference is the base: with LoRA's B = 0 the policy starts as the base, so the first margin is 0
    assert _json(run, "metrics/train_dpo.json")["rewards_margins_first"] == pytest.approx(0.0, abs=1e-6)
    for method in ("inlp", "sentence_debias"):  # fitted on models/sft: sft's merged weights are under them
        fitted = load_model(run.repo / "models" / method, dtype="float32").state_dict()
        sft = load_model(run.repo / "models" / "sft", dtype="float32").state_dict()
        assert all(fitted[k].equal(sft[k]) for k in load_file(run.repo / "models" / "sft" / "model.safetensors"))
    for method in METHODS:
        metrics = _json(run, f"metrics/evaluate/{method}.json")
        assert metrics["rows"]["kept"] == 8


def test_a_bfloat16_base_is_trained_and_scored_in_float32(run):
    import pandas as pd
    import torch
    from safetensors.torch import load_file

    assert _json(run, "metrics/prepare_model.json")["dtype"] == "bfloat16"
    base = load_file(run.repo / "models" / "base" / "model.safetensors")
    assert {t.dtype for t in base.values()} == {torch.bfloat16}
    for method in TRAINED:  # trained, and LoRA merged, in float32 on the bfloat16 base
        assert {t.dtype for t in load_file(run.repo / "models" / method / "model.safetensors").values()} == {torch.float32}
    prefs = pd.read_parquet(run.repo / "data" / "eval" / "sft" / "preferences.parquet")
    assert len(prefs) > 0 and prefs["margin"].dtype == "float64" and prefs["margin"].notna().all()


def test_decoding_is_greedy_whatever_the_hub_models_generation_config_says(run):
    from aligntax.generation import generate_ids
    from aligntax.models import load_model, load_tokenizer

    config = json.loads((run.repo / "models" / "base" / "generation_config.json").read_text())
    assert not ({"do_sample", "temperature", "top_p", "max_length"} & set(config))  # Llama-2's are dropped
    import pandas as pd

    gens = pd.read_parquet(run.repo / "data" / "eval" / "base" / "generations.parquet")
    model, tok = load_model(run.repo / "models" / "base", dtype="float32"), load_tokenizer(run.repo / "models" / "base")
    prompt = ["Summarize this Reddit post in one sentence.\n\nPost: " + gens["post"].iloc[0] + "\n\nTL;DR:"]
    assert generate_ids(model, tok, prompt, 8, 1, seed=1) == generate_ids(model, tok, prompt, 8, 1, seed=2)


@pytest.fixture(scope="module")
def gpt2_run(run) -> pipeline.Run:
    result = pipeline.rerun(run, "gpt2", Path(pipeline.HERE / "gpt2.yaml"), GPT2_STAGES)
    assert result.returncode == 0, f"dvc repro of the gpt2 stages failed:\n{result.log[-6000:]}"
    return result


def test_the_gpt2_shape_trains_lora_on_conv1d_folds_a_projection_and_self_debiases(gpt2_run):
    from safetensors.torch import load_file

    from aligntax.models import load_model

    assert _json(gpt2_run, "metrics/prepare_model.json")["architecture"] == "GPT2LMHeadModel"
    opened = gpt2_run.trace.read_text()
    assert "prepare_model.py" in opened and "models--gpt2" in opened
    for method in ("sft", "contrastive"):
        saved = load_file(gpt2_run.repo / "models" / method / "model.safetensors")
        assert any(k.endswith("attn.c_attn.weight") for k in saved) and not any("lora_" in k for k in saved)
        assert load_model(gpt2_run.repo / "models" / method).config.model_type == "gpt2"
    assert (gpt2_run.repo / "models" / "contrastive" / "contrastive_head.safetensors").is_file()
    inlp = load_model(gpt2_run.repo / "models" / "inlp", dtype="float32")
    assert not inlp.config.tie_word_embeddings
    assert not inlp.lm_head.weight.equal(inlp.transformer.wte.weight)  # the projection is folded into an untied head
    for method in ("inlp", "self_debias"):
        metrics = _json(gpt2_run, f"metrics/evaluate/{method}.json")
        assert metrics["model"].endswith("inlp" if method == "inlp" else "sft") and metrics["rows"]["kept"] == 8

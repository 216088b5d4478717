"""Training on cached frozen states (aligntax/train/frozen.py): same results as the plain path, the
on-disk store's keys and checks, and when the cache turns itself off."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from aligntax.baselines import dpo, dropout, unlikelihood
from aligntax.baselines.dpo import DpoConfig
from aligntax.baselines.dropout import DropoutConfig
from aligntax.baselines.unlikelihood import UnlikelihoodConfig
from aligntax.models import ModelConfig, load_model, load_tokenizer
from aligntax.train import contrastive, frozen, sft
from aligntax.train.core import TrainInputs, train_method
from aligntax.train.loss import LossConfig
from aligntax.train.objective import attach_head, compute_objective, decoder_blocks
from aligntax.train.packing import Variant, collate, encode, pieces
from aligntax.train.trainer import TrainConfig, select_trainable

RAW = pd.DataFrame({
    "id": ["a", "b", "c", "d"],
    "post": ["i dropped my phone in the toilet at work today and my boss laughed.",
             "we drove to new york with john and mary for the weekend and got lost.",
             "my cat knocked over a glass of water on my laptop on monday morning.",
             "forgot my keys and got locked out in the rain, called my mom in boston."],
    "summary": ["dropped my phone in the toilet.", "drove to new york with john, got lost.",
                "cat spilled water on my laptop on monday.", "locked out in the rain."],
    "subreddit": ["tifu"] * 4, "title": ["t"] * 4,
})
GROUPS = pd.DataFrame([
    ("a", "positive", "reference", "dropped my phone in the toilet.", [], 0.01),
    ("a", "positive", "backtranslation", "my phone fell in the toilet.", [], 0.02),
    ("a", "negative", "toxic_lm", "dropped my stupid phone in the damn toilet, idiot.", [], 0.93),
    ("a", "negative", "swap_ent", "dropped my laptop in the toilet.", [], 0.0),
    ("b", "positive", "reference", "drove to new york with john, got lost.", [{"start": 9, "end": 17}], 0.0),
    ("b", "positive", "lm_paraphrase", "went to new york with john and got lost.", [{"start": 8, "end": 16}], 0.01),
    ("b", "negative", "swap_ent", "drove to boston with john, got lost.", [{"start": 9, "end": 15}], 0.05),
    ("c", "positive", "reference", "cat spilled water on my laptop on monday.", [], 0.0),
    ("c", "positive", "backtranslation", "the cat spilled water on my laptop.", [], 0.0),
    ("c", "negative", "toxic_lexicon", "damn cat spilled water on my laptop.", [], 0.7),
], columns=["post_id", "role", "kind", "text", "entity_spans", "toxicity"])
MC = ModelConfig(prompt_template="post: {post} tl;dr:")
BUDGET = dict(epochs=2, grad_accum=2, lr=1e-2, warmup_ratio=0.0, logging_steps=1, max_prompt_tokens=40,
              trainable="top_layers", top_layers=1)
TOL = 1e-5


def _run(method, cfg, base, out: Path, groups=None, **train) -> tuple[dict, list[float], dict]:
    inputs = TrainInputs(base, RAW, TrainConfig(**(BUDGET | train)), MC, 0, out / "model", groups=groups,
                         live_dir=out / "live")
    metrics = train_method(method, cfg, inputs)
    curve = pd.read_csv(out / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")["loss"].tolist()
    tensors = {p.name + "/" + k: v for p in sorted((out / "model").glob("*.safetensors")) for k, v in load_file(p).items()}
    return metrics, curve, tensors


CASES = {
    "sft": (sft, None, {}),
    "contrastive packed": (contrastive, LossConfig(scale="dynamic", temperature=0.5), {}),
    "contrastive naive": (contrastive, LossConfig(pool_position="predicts"), {"packing": False}),
    "unlikelihood": (unlikelihood, UnlikelihoodConfig(max_negatives_per_post=2), {}),
    # trl's DPOTrainer through frozen.top_on_rows: reference pass and steps on the stored states
    "dpo": (dpo, DpoConfig(), {}),
    "dpo padded pairs": (dpo, DpoConfig(max_pairs_per_post=2, sft_weight=0.0), {"batch_size": 2, "grad_accum": 1}),
    "dpo reference model": (dpo, DpoConfig(precompute_ref=False), {}),
}


@pytest.mark.parametrize("case", CASES)
def test_cached_states_train_as_the_plain_path(case, tiny_llama_dir, tmp_path):
    method, cfg, extra = CASES[case]
    groups = GROUPS if getattr(method, "NEEDS_GROUPS", False) else None
    plain, plain_curve, plain_tensors = _run(method, cfg, tiny_llama_dir, tmp_path / "plain", groups,
                                             frozen_cache=False, **extra)
    cached, curve, tensors = _run(method, cfg, tiny_llama_dir, tmp_path / "cached", groups, **extra)
    assert plain["frozen_cache"] == {"used": False, "why_not": "train.frozen_cache is false"}
    assert cached["frozen_cache"]["used"] and cached["frozen_cache"]["split"] == 1
    assert len(curve) == len(plain_curve) == 4
    assert curve == pytest.approx(plain_curve, abs=TOL, rel=0)
    assert tensors.keys() == plain_tensors.keys() and any("layers.1." in k for k in tensors)
    assert not any("layers.0." in k for k in tensors)
    base = load_file(tiny_llama_dir / "model.safetensors")
    moved = [k for k in tensors if k.startswith("model.safetensors/")
             and not torch.equal(tensors[k], base[k.split("/", 1)[1]])]
    assert moved  # training changed the top, so equal tensors are a real check
    # DPO's loss is a difference of two sequences' log-probs: a few weights get gradients under 1e-6, where
    # float noise changes Adam's normalised step (lr * g / (|g| + eps)); they end up to ~1e-4 apart
    tol = 1e-4 if method is dpo else TOL
    for key in tensors:
        assert (tensors[key] - plain_tensors[key]).abs().max() <= tol, key
    assert set(cached["seconds"]) == {"total", "load", "encode", "cache", "train", "save"}


def _store_inputs(tiny_llama_dir, top_layers=1, **overrides):
    model = load_model(tiny_llama_dir, dtype="float32", **overrides)
    select_trainable(model, TrainConfig(top_layers=top_layers))
    tok = load_tokenizer(tiny_llama_dir)
    examples = []
    for post, summary in zip(RAW["post"], RAW["summary"], strict=True):
        ex, _ = encode(tok, MC.prompt_template, post, [Variant(summary, True), Variant("i fell.", False)], 40, 16)
        examples.append(ex)
    return model, examples


def test_store_reuses_entries_across_runs_and_recomputes_a_bad_one(tiny_llama_dir, tmp_path, caplog):
    model, examples = _store_inputs(tiny_llama_dir)
    first = frozen.FrozenStore(model, 1, tiny_llama_dir, tmp_path)
    first.fill(model, examples, pieces)
    assert first.metrics() | {"mib": 0} == {"used": True, "split": 1, "disk": True, "pieces": 12, "computed": 12,
                                           "from_disk": 0, "bad_entries": 0, "mib": 0}
    files = sorted(first.folder.glob("*.safetensors"))
    assert len(files) == 12 and (first.folder / "model.json").is_file()
    again = frozen.FrozenStore(model, 1, tiny_llama_dir, tmp_path)  # a later run: everything from disk
    again.fill(model, examples, pieces)
    assert (again.counts["computed"], again.counts["from_disk"]) == (0, 12)
    assert all(torch.equal(first.states[k], again.states[k]) for k in first.states)

    files[0].write_bytes(files[0].read_bytes()[:40])  # truncated
    files[1].unlink()
    files[1].write_bytes(files[2].read_bytes())  # another entry's file under this name
    with caplog.at_level(logging.WARNING, logger="aligntax.train.frozen"):
        fixed = frozen.FrozenStore(model, 1, tiny_llama_dir, tmp_path)
        fixed.fill(model, examples, pieces)
    assert (fixed.counts["bad_entries"], fixed.counts["computed"], fixed.counts["from_disk"]) == (2, 2, 10)
    assert len([r for r in caplog.records if "bad entry" in r.message]) == 2
    assert all(torch.allclose(first.states[k], fixed.states[k], atol=1e-6) for k in first.states)
    assert sorted(fixed.folder.glob("*.safetensors")) == files  # rewritten in place, nothing left over


def test_store_is_never_reused_for_another_base_split_or_text(tiny_llama_dir, build_tiny, tmp_path):
    model, examples = _store_inputs(tiny_llama_dir)
    store = frozen.FrozenStore(model, 1, tiny_llama_dir, tmp_path / "store")
    other_split = frozen.FrozenStore(model, 0, tiny_llama_dir, tmp_path / "store")
    other_base_dir = build_tiny(tmp_path / "other", "llama", seed=1)
    other_base = frozen.FrozenStore(load_model(other_base_dir, dtype="float32"), 1, other_base_dir, tmp_path / "store")
    assert len({store.folder, other_split.folder, other_base.folder}) == 3
    prompt, summaries = pieces(examples[0])
    assert store.entry_key(prompt, summaries[0]) != store.entry_key(prompt, summaries[0][:-1])
    assert store.entry_key(prompt, summaries[0]) != store.entry_key(prompt[1:], summaries[0])
    store.fill(model, examples, pieces)
    other_base.fill(load_model(other_base_dir, dtype="float32"), examples, pieces)
    assert other_base.counts["from_disk"] == 0 and other_base.counts["computed"] == store.counts["computed"]


def test_an_entry_does_not_depend_on_what_the_store_held_before(tiny_llama_dir):
    """A piece is computed the same way whatever else is missing: `sft` first (prompts and references),
    then `contrastive`, gives the bytes of one fill of everything."""
    model, examples = _store_inputs(tiny_llama_dir)
    at_once = frozen.FrozenStore(model, 1, tiny_llama_dir, None)
    at_once.fill(model, examples, pieces)
    stepwise = frozen.FrozenStore(model, 1, tiny_llama_dir, None)
    stepwise.fill(model, examples, lambda ex: (ex.prompt, ex.variants[:1]))
    assert stepwise.counts["computed"] == 8
    stepwise.fill(model, examples, pieces)
    assert stepwise.counts["computed"] == 12 and stepwise.states.keys() == at_once.states.keys()
    assert all(torch.equal(at_once.states[k], stepwise.states[k]) for k in at_once.states)


def test_memory_only_when_the_store_is_off(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(frozen.ENV, "off")
    assert frozen.store_root() is None
    monkeypatch.setenv(frozen.ENV, str(tmp_path / "x"))
    assert frozen.store_root() == tmp_path / "x"
    monkeypatch.delenv(frozen.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert frozen.store_root() == tmp_path / "cache" / "aligntax" / "frozen"
    model, examples = _store_inputs(tiny_llama_dir)
    store = frozen.FrozenStore(model, 1, tiny_llama_dir, None)
    store.fill(model, examples, pieces)
    assert store.metrics()["disk"] is False and store.counts["computed"] == 12


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_batch_states_equal_the_bottom_of_the_plain_forward(family, tiny_llama_dir, tiny_gpt2_dir):
    """The assembled frozen_states of a packed batch are what block `split` reads in the plain forward."""
    path = tiny_llama_dir if family == "llama" else tiny_gpt2_dir
    no_dropout = {} if family == "llama" else {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    model, examples = _store_inputs(path, **no_dropout)
    pad = load_tokenizer(path).pad_token_id
    attach_head(model)
    assert frozen.why_not(model, 1, frozen.snapshot(model, 1), examples[0].prompt) is None
    store = frozen.FrozenStore(model, 1, path, None)
    store.fill(model, examples, pieces)
    for ex in examples:
        ex.contrastive = True
        ex.positive = [True, True]
        ex.pool = [[True] * len(v) for v in ex.variants]
        ex.variants.append(ex.variants[1][:2])
        ex.pool.append([True, False]), ex.positive.append(False)
    with pytest.raises(KeyError, match="never filled"):
        collate(examples[:2], packed=True, pad_id=pad, frozen=store)
    store.fill(model, examples, pieces)
    batch = collate(examples[:2], packed=True, pad_id=pad, frozen=store)
    seen = {}

    def first_input(module, args, kwargs):  # what block 1 reads in the first (plain) forward below
        seen.setdefault("h", args[0] if args else kwargs["hidden_states"])

    handle = decoder_blocks(model)[1].register_forward_pre_hook(first_input, with_kwargs=True)
    plain = {k: v for k, v in batch.items() if not k.startswith("frozen")}
    with torch.no_grad():
        out_plain = compute_objective(model, plain, LossConfig())
        out_cached = compute_objective(model, batch, LossConfig())
    handle.remove()
    real = plain["input_ids"] != pad
    assert (seen["h"] - batch["frozen_states"])[real].abs().max() <= 1e-6
    for key in ("loss", "ce", "l_cl"):
        assert out_cached[key].item() == pytest.approx(out_plain[key].item(), rel=1e-6, abs=1e-6)


def test_cache_turns_itself_off_and_says_why(tiny_llama_dir, tiny_gpt2_dir, tmp_path):
    lora, _, _ = _run(sft, None, tiny_llama_dir, tmp_path / "lora", trainable="lora", epochs=1)
    assert lora["frozen_cache"] == {"used": False, "why_not": "train.trainable is lora: the whole model trains"}
    drop, _, _ = _run(dropout, DropoutConfig(), tiny_llama_dir, tmp_path / "dropout", epochs=1)
    assert not drop["frozen_cache"]["used"] and "dropout below block 1" in drop["frozen_cache"]["why_not"]
    gpt2, _, _ = _run(sft, None, tiny_gpt2_dir, tmp_path / "gpt2", epochs=1)  # GPT-2 configs default to dropout 0.1
    assert not gpt2["frozen_cache"]["used"] and "dropout" in gpt2["frozen_cache"]["why_not"]


def test_setup_model_below_the_split_or_random_bottom_turns_it_off(tiny_llama_dir):
    model, examples = _store_inputs(tiny_llama_dir)
    probe = examples[0].prompt
    before = frozen.snapshot(model, 1)
    assert frozen.why_not(model, 1, before, probe) is None
    with torch.no_grad():
        decoder_blocks(model)[0].mlp.up_proj.weight.mul_(1.0)  # an in-place rewrite, even a no-op one
    assert "setup_model changed the model below block 1" in frozen.why_not(model, 1, before, probe)

    model, _ = _store_inputs(tiny_llama_dir)
    before = frozen.snapshot(model, 1)
    decoder_blocks(model)[0].mlp.register_forward_hook(lambda m, a, out: out + 0.1 * torch.randn_like(out))
    assert "setup_model changed" in frozen.why_not(model, 1, before, probe)
    assert "not deterministic" in frozen.why_not(model, 1, frozen.snapshot(model, 1), probe)

    model, _ = _store_inputs(tiny_llama_dir)
    decoder_blocks(model)[0].requires_grad_(True)
    assert "a parameter below block 1 trains" in frozen.why_not(model, 1, frozen.snapshot(model, 1), probe)

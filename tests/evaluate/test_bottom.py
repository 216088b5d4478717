"""The shared frozen bottom: which blocks a method shares, exactness against the plain transformers
path (logits, margins, greedy generations), and the store's keys and bad entries."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from aligntax.evaluate import run
from aligntax.evaluate.bottom import Runner, StateStore, find_split, store_root
from aligntax.evaluate.preference import PreferenceConfig, build_pairs, packed_row, score_pairs
from aligntax.generation import Decoding, generate, left_pad, positions
from aligntax.io import atomic_dir
from aligntax.models import load_model, load_tokenizer, save_partial

TEMPLATE = "post: {post} tl;dr:"
POSTS = ["we drove to new york with john and mary and got lost.", "my cat knocked over a glass of water.",
         "i dropped my phone in the toilet at work today and my boss laughed at me."]


def _derive(base, out, keys, seed, untie=False):
    """A partial folder on ``base`` whose tensors ``keys`` are perturbed (like a trained top or a fitted head)."""
    model = load_model(base, dtype="float32")
    if untie:
        head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
        head.weight.data.copy_(model.get_output_embeddings().weight)
        model.config.tie_word_embeddings = False
        model.set_output_embeddings(head)
    torch.manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for k in keys:
            state[k].add_(0.05 * torch.randn_like(state[k]))
    with atomic_dir(out) as tmp:
        save_partial(model, tmp, set(keys), base, out)
        load_tokenizer(base).save_pretrained(tmp)
    return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tiny_llama_dir):
    """base (2 blocks) -> top (block 1 + final norm changed) -> head (its LM head changed, untied)."""
    tmp = tmp_path_factory.mktemp("chain")
    model = load_model(tiny_llama_dir)
    top_keys = [k for k in model.state_dict() if k.startswith(("model.layers.1.", "model.norm."))]
    top = _derive(tiny_llama_dir, tmp / "top", top_keys, 1)
    head = _derive(top, tmp / "head", ["lm_head.weight"], 2, untie=True)
    return tiny_llama_dir, top, head, tmp


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNTAX_STATE_CACHE", str(tmp_path / "states"))
    return StateStore(store_root())


def test_split_is_where_the_chain_first_differs_from_its_root(chain, tmp_path):
    base, top, head, _ = chain
    model = load_model(base)
    assert find_split(base, model) is None  # a full model shares with nothing
    split = find_split(top, load_model(top))
    assert split.layer == 1 and split.root == base
    assert find_split(head, load_model(head)) == split  # inlp -> sft -> base: the union of the changes
    emb = _derive(base, tmp_path / "emb", ["model.embed_tokens.weight"], 3)
    bottom = _derive(base, tmp_path / "bottom", ["model.layers.0.mlp.up_proj.weight"], 4)
    assert find_split(emb, load_model(emb)) is None and find_split(bottom, load_model(bottom)) is None
    cfg = _derive(base, tmp_path / "cfg", top_keys(model), 5)
    (cfg / "config.json").write_text((cfg / "config.json").read_text().replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 0.001'))
    assert find_split(cfg, load_model(cfg)) is None
    dropout = _derive(base, tmp_path / "dropout", top_keys(model), 6)
    text = (dropout / "config.json").read_text()
    (dropout / "config.json").write_text(text.replace('"attention_dropout": 0.0', '"attention_dropout": 0.15'))
    assert '"attention_dropout": 0.15' in (dropout / "config.json").read_text()
    assert find_split(dropout, load_model(dropout)).layer == 1  # no dropout at evaluation


def top_keys(model):
    return [k for k in model.state_dict() if k.startswith(("model.layers.1.", "model.norm."))]


def _hf_logits(model, prompt, variants):
    ids, pos, mask, keep = packed_row(prompt, variants)
    with torch.no_grad():
        return model(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=False).logits[0, keep]


@pytest.mark.parametrize("which", [1, 2])
def test_packed_logits_equal_the_plain_forward_from_the_store_or_not(chain, store, which):
    method = chain[which]
    model, tok = load_model(method).eval(), load_tokenizer(method)
    prompt = tok(POSTS[0]).input_ids
    variants = [tok(" got lost", add_special_tokens=False).input_ids + [tok.eos_token_id],
                tok(" lost in boston", add_special_tokens=False).input_ids + [tok.eos_token_id]]
    want = _hf_logits(model, prompt, variants)
    ids, pos, mask, keep = packed_row(prompt, variants)
    runner = Runner(model, find_split(method, model), store)
    with torch.no_grad():
        miss = runner.logits(ids, pos, mask, keep)
        hit = runner.logits(ids, pos, mask, keep)
        plain = Runner(model, None, None).logits(ids, pos, mask, keep)
    assert store.stats["misses"] == 1 and store.stats["hits"] == 1 and store.stats["bytes_written"] > 0
    assert torch.equal(hit, miss) and torch.equal(plain, miss)  # the same block loop either way
    assert (miss - want).abs().max() < 1e-5


def test_margins_from_the_shared_bottom_equal_the_plain_path(chain, store):
    _, top, _, _ = chain
    model, tok = load_model(top).eval(), load_tokenizer(top)
    evals = pd.DataFrame([{"id": f"p{i}", "post": p, "summary": "got lost on the way"} for i, p in enumerate(POSTS)])
    groups = pd.DataFrame([
        {"post_id": f"p{i}", "role": role, "kind": kind, "text": text}
        for i in range(3) for role, kind, text in [("positive", "backtranslation", "we got lost"),
                                                   ("negative", "swap_ent", "got lost in boston"),
                                                   ("negative", "toxic_lexicon", "got damn lost on the way")]])
    items, _ = build_pairs(evals, groups)
    prompts = [tok(p).input_ids for p in POSTS]
    plain = Runner(model, None, None)
    shared = Runner(model, find_split(top, model), store)
    want, want_lik, _ = score_pairs("m", plain, Decoding(), tok, prompts, items, PreferenceConfig(), tok.eos_token_id)
    for _ in range(2):  # computed, then read back
        got, got_lik, _ = score_pairs("m", shared, Decoding(), tok, prompts, items, PreferenceConfig(), tok.eos_token_id)
        pd.testing.assert_frame_equal(got, want, atol=1e-5, rtol=0)
        pd.testing.assert_frame_equal(got_lik, want_lik, atol=1e-5, rtol=0)
    assert store.stats["hits"] == 3 and store.stats["misses"] == 3
    for item, prompt, lik in zip(items, prompts, [want_lik[want_lik["post_id"] == it.post_id] for it in items],
                                 strict=True):
        ref = tok(" " + item.texts[0], add_special_tokens=False).input_ids + [tok.eos_token_id]
        with torch.no_grad():
            logp = model(torch.tensor([prompt + ref])).logits[0].log_softmax(-1)
        direct = sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(ref))
        assert lik.loc[lik["kind"] == "reference", "logprob_sum"].item() == pytest.approx(direct, abs=1e-4)


def test_prefill_cache_equals_the_plain_one_and_greedy_generations_are_identical(chain, store):
    _, top, _, _ = chain
    model, tok = load_model(top).eval(), load_tokenizer(top)
    prompts = [tok(p).input_ids for p in POSTS]
    runner = Runner(model, find_split(top, model), store)
    ids, mask = left_pad(prompts, tok.pad_token_id)
    pos = positions(mask)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True).past_key_values
        miss, hit = runner.prefill(ids, mask, pos), runner.prefill(ids, mask, pos)
    for layer in range(model.config.num_hidden_layers):
        for got in (miss, hit):
            assert (got.layers[layer].keys - want.layers[layer].keys).abs().max() < 1e-5
            assert (got.layers[layer].values - want.layers[layer].values).abs().max() < 1e-5
    assert torch.equal(miss.layers[0].keys, hit.layers[0].keys) and store.stats["hits"] == 1
    plain = generate(model, tok, prompts, 12, 3)
    for _ in range(2):
        assert generate(model, tok, prompts, 12, 3, prefill=runner.prefill) == plain
    assert generate(model, tok, prompts, 12, 2, prefill=runner.prefill) == generate(model, tok, prompts, 12, 2)


def test_a_bad_entry_is_deleted_and_recomputed_with_one_log_line(chain, store, caplog):
    _, top, _, _ = chain
    model, tok = load_model(top).eval(), load_tokenizer(top)
    runner = Runner(model, find_split(top, model), store)
    ids, pos, mask, keep = packed_row(tok(POSTS[1]).input_ids, [tok(" a cat", add_special_tokens=False).input_ids])
    with torch.no_grad():
        want = runner.logits(ids, pos, mask, keep)
    (path,) = list(store.root.rglob("*.safetensors"))
    good = path.read_bytes()
    for corrupt in (lambda: path.write_bytes(good[: len(good) // 2]),
                    lambda: save_file({"hidden": torch.full_like(load_file(path)["hidden"], float("nan"))}, path,
                                      metadata={"key": "x"}),
                    lambda: save_file({"hidden": load_file(path)["hidden"][:, :-1].contiguous()}, path,
                                      metadata={"key": _meta(path)})):
        path.write_bytes(good)
        corrupt()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="aligntax.evaluate.bottom"), torch.no_grad():
            assert torch.equal(runner.logits(ids, pos, mask, keep), want)
        assert len(caplog.records) == 1 and "bad bottom-state entry" in caplog.records[0].message
        assert path.read_bytes() == good  # rewritten
    assert store.stats["bad"] == 3


def _meta(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return fh.metadata()["key"]


def test_entries_are_keyed_by_base_split_and_exact_inputs(chain, store):
    _, top, _, _ = chain
    model, tok = load_model(top).eval(), load_tokenizer(top)
    split = find_split(top, model)
    ids, pos, mask, keep = packed_row(tok(POSTS[1]).input_ids, [tok(" a cat", add_special_tokens=False).input_ids])
    inputs = {"ids": ids, "mask": mask, "pos": pos}
    fields = {"kind": "packed", "weights": split.weights, "split": 1}
    key = store.key(fields, inputs)[0]
    assert store.key(fields, inputs)[0] == key
    assert store.key({**fields, "weights": "other"}, inputs)[0] != key
    assert store.key({**fields, "split": 0}, inputs)[0] != key
    assert store.key(fields, {**inputs, "ids": ids.flip(-1)})[0] != key
    assert store.key(fields, {**inputs, "mask": mask.clone().fill_(0)})[0] != key
    assert store.path("abc" * 10, key).parent.parent.name == ("abc" * 10)[:16]


def test_store_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNTAX_STATE_CACHE", "off")
    assert store_root() is None
    monkeypatch.delenv("ALIGNTAX_STATE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert store_root() == tmp_path / "aligntax" / "states"


def test_the_evaluate_run_uses_the_store_for_a_partial_model_and_then_for_its_root(chain, store):
    base, top, head, _ = chain
    evals = pd.DataFrame([{"id": f"p{i}", "post": p, "summary": "got lost"} for i, p in enumerate(POSTS)])
    cfg = run.GenerateConfig(max_new_tokens=6, batch_size=2)
    out, stats = {}, {}
    for name, folder in (("top", top), ("head", head), ("top-again", top), ("base", base)):
        m = run.load_method(name, folder, Decoding())
        prompts = run.encode_prompts(m.tokenizer, TEMPLATE, "", evals, 64)
        out[name] = run.generate_method(m, evals, prompts, cfg)
        stats[name] = run.bottom_metrics(m)
    assert all(s["split"] == 1 for s in stats.values())  # base takes the split its derived models used
    assert [(s["hits"], s["misses"]) for s in stats.values()] == [(0, 2), (2, 0), (2, 0), (2, 0)]
    assert len(list(store.root.rglob("*.safetensors"))) == 2  # two batches of the plan, written once
    pd.testing.assert_frame_equal(out["top"], out["top-again"].assign(method="top"))
    for name, folder in (("top", top), ("base", base)):  # the same generations without the store
        m = run.load_method(name, folder, Decoding())
        m.runner.split = m.runner.store = None
        pd.testing.assert_frame_equal(out[name], run.generate_method(m, evals, prompts, cfg))

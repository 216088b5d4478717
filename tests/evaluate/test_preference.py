"""Paired likelihood preferences: pairing rules, packed scoring, and the instrument's controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aligntax.baselines.self_debias import SelfDebiasConfig, SelfDebiasDecoding, debias_scores
from aligntax.evaluate.bottom import Runner
from aligntax.evaluate.preference import PreferenceConfig, build_pairs, end_token, margins, score_pairs, score_post
from aligntax.generation import Decoding
from aligntax.models import build_prompt, load_model, load_tokenizer

TEMPLATE = "post: {post} tl;dr:"
POSTS = [
    ("p0", "we drove to new york with john and mary and got lost.", "got lost in new york with john"),
    ("p1", "my cat knocked over a glass of water on my laptop on monday.", "cat broke my laptop on monday"),
    ("p2", "i dropped my phone in the toilet at work today.", "dropped my phone in the toilet"),
]
NEGATIVES = {
    "p0": [("swap_ent", "got lost in boston with mary"), ("toxic_lexicon", "got lost in damn new york with stupid john")],
    "p1": [("mask_regen", "cat broke my laptop on friday"), ("toxic_lm", "my idiot cat broke my awful laptop")],
    "p2": [("sys_lowcon", "the phone at work in the toilet"), ("toxic_lexicon", "dropped my damn phone in the toilet")],
}


def _evals() -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "post": p, "summary": s, "subreddit": "tifu", "title": None} for i, p, s in POSTS])


def _row(pid, role, kind, text):
    return {"post_id": pid, "role": role, "kind": kind, "text": text, "entity_spans": [], "toxicity": 0.0}


def _groups() -> pd.DataFrame:
    rows = []
    for pid, _, summary in POSTS:
        rows.append(_row(pid, "positive", "reference", summary))
        rows.append(_row(pid, "positive", "backtranslation", "so " + summary))
        rows += [_row(pid, "negative", kind, text) for kind, text in NEGATIVES[pid]]
    return pd.DataFrame(rows)


def test_build_pairs_axes_and_bad_input_rules():
    groups = pd.concat([_groups(), pd.DataFrame([
        _row("p0", "negative", "swap_ent", "got lost in new york with john"),  # == reference
        _row("p0", "negative", "mask_regen", "   "),  # blank
        _row("zz", "negative", "swap_ent", "unknown post"),
        _row("p3", "positive", "reference", "only a reference"),
    ])], ignore_index=True)
    evals = pd.concat([_evals(), pd.DataFrame([{"id": "p3", "post": "x y", "summary": "only a reference",
                                                "subreddit": "t", "title": None}])], ignore_index=True)
    items, rows = build_pairs(evals, groups)
    assert [i.post_id for i in items] == ["p0", "p1", "p2"]
    assert rows["negatives_equal_reference"] == 1 and rows["variants_blank"] == 1
    assert rows["group_rows_unknown_post"] == 1 and rows["posts_without_negative"] == 1
    p0 = items[0]
    assert [(a, k) for _, _, a, k in p0.pairs] == [("entity", "swap_ent"), ("paraphrase", "swap_ent"),
                                                   ("toxic", "toxic_lexicon"), ("paraphrase", "toxic_lexicon")]
    assert p0.texts[0] == "got lost in new york with john"


def test_margin_normalisation_and_sign():
    items, _ = build_pairs(_evals().head(1), _groups())
    # variants: reference, paraphrase, swap_ent, toxic_lexicon
    lp = [np.array([-10.0, -12.0, -11.0, -18.0])]
    n = [np.array([5, 6, 5, 9])]
    pairs = margins(items, lp, n, PreferenceConfig(), "m").set_index(["axis", "kind"])
    assert pairs.loc[("entity", "swap_ent"), "margin"] == pytest.approx(1.0)  # summed
    assert pairs.loc[("toxic", "toxic_lexicon"), "margin"] == pytest.approx(-2.0 + 2.0)  # per-token mean: 0
    assert not pairs.loc[("toxic", "toxic_lexicon"), "preferred"]
    assert pairs.loc[("entity", "swap_ent"), "preferred"]
    assert pairs.loc[("paraphrase", "swap_ent"), "margin"] == pytest.approx(-2.0 + 2.2)


def _score(model, tok, prompt, texts, decoding=None):
    return score_post(Runner(model, None, None), decoding or Decoding(), tok, tok(prompt).input_ids, texts,
                      tok.eos_token_id)


def _pairs(model, tok, items, decoding=None, prefix=""):
    prompts = [tok(prefix + build_prompt(TEMPLATE, it.post)).input_ids for it in items]
    pairs, variants, _ = score_pairs("m", Runner(model, None, None), decoding or Decoding(), tok, prompts, items,
                                     PreferenceConfig(), tok.eos_token_id)
    return pairs, variants


def test_identical_texts_are_scored_once_and_reported_per_group_row():
    groups = pd.concat([_groups(), pd.DataFrame([
        _row("p0", "negative", "sys_lowcon", "got lost in boston with mary"),  # == the swap_ent negative
        _row("p0", "negative", "swap_ent", "so got lost in new york with john"),  # == the paraphrase
    ])], ignore_index=True)
    items, rows = build_pairs(_evals().head(1), groups)
    p0 = items[0]
    assert len(p0.texts) == 4 and len(p0.variants) == 6
    assert [(p0.texts[i], k, r) for i, k, r in p0.variants][-2:] == [
        ("got lost in boston with mary", "sys_lowcon", "negative"), ("so got lost in new york with john", "swap_ent", "negative")]
    assert rows["negatives_equal_paraphrase"] == 1
    assert ("entity", "sys_lowcon") in [(a, k) for _, _, a, k in p0.pairs]


def test_packed_scores_equal_separate_forward_passes(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    prompt = build_prompt(TEMPLATE, POSTS[0][1])
    texts = [POSTS[0][2], "got lost", "you are a stupid idiot"]
    sums, lengths = _score(model, tok, prompt, texts)
    for text, s, n in zip(texts, sums, lengths, strict=True):
        p = tok(prompt).input_ids
        v = tok(" " + text, add_special_tokens=False).input_ids + [tok.eos_token_id]
        with torch.no_grad():
            logp = model(torch.tensor([p + v])).logits[0].log_softmax(-1)
        ref = sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(v))
        assert n == len(v) and s == pytest.approx(ref, abs=1e-4)


def test_self_debias_with_no_decay_equals_plain(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    prompt = build_prompt(TEMPLATE, POSTS[1][1])
    plain, _ = _score(model, tok, prompt, [POSTS[1][2]])
    off = SelfDebiasDecoding(cfg=SelfDebiasConfig(prefixes=["rude text:"], decay_constant=1e-9))
    on = SelfDebiasDecoding(cfg=SelfDebiasConfig(prefixes=["rude text:"], decay_constant=1e4))
    same, _ = _score(model, tok, prompt, [POSTS[1][2]], off)
    moved, _ = _score(model, tok, prompt, [POSTS[1][2]], on)
    assert same[0] == pytest.approx(plain[0], abs=1e-4) and abs(moved[0] - plain[0]) > 1e-3


def test_end_token_outside_vocabulary_is_one_clear_error(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    tok.add_special_tokens({"eos_token": "<new-end>"})
    with pytest.raises(ValueError, match="end token .* not in the model's vocabulary.*prepare-model"):
        end_token(tok, model.get_output_embeddings().weight.shape[0], tiny_llama_dir)


def _finetune(model, tok, items, target: str, steps: int = 12) -> None:
    """A few CE steps toward the references (target='good') or the negatives ('bad')."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        for item in items:
            idx = [0] if target == "good" else sorted({b for _, b, _, _ in item.pairs})
            for i in idx:
                p = tok(build_prompt(TEMPLATE, item.post)).input_ids
                v = tok(" " + item.texts[i], add_special_tokens=False).input_ids + [tok.eos_token_id]
                labels = torch.tensor([[-100] * len(p) + v])
                loss = model(torch.tensor([p + v]), labels=labels).loss
                loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()


@pytest.mark.parametrize("target", ["good", "bad"])
def test_controls_training_toward_references_raises_and_toward_negatives_lowers(tiny_llama_dir, target):
    tok = load_tokenizer(tiny_llama_dir)
    items, _ = build_pairs(_evals(), _groups())

    def measure(model):
        pairs, _ = _pairs(model, tok, items)
        ref = pairs[pairs["good"] == "reference"]
        return ref["margin_mean"].mean(), ref["preferred"].mean()

    model = load_model(tiny_llama_dir)
    margin0, acc0 = measure(model)
    _finetune(model, tok, items, target)
    margin1, acc1 = measure(model)
    if target == "good":
        assert margin1 > margin0 + 0.1 and acc1 > acc0
    else:
        assert margin1 < margin0 - 0.1 and acc1 < acc0


def test_decoding_time_methods_are_scored_with_their_decoding(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)
    items, _ = build_pairs(_evals(), _groups())
    plain, plain_lik = _pairs(model, tok, items[:1])
    prefixed, _ = _pairs(model, tok, items[:1], prefix="be kind: ")
    assert not np.allclose(plain["margin"], prefixed["margin"])  # instructive: scored behind its prefix
    decoding = SelfDebiasDecoding(cfg=SelfDebiasConfig(prefixes=["you are a stupid idiot:"], decay_constant=50.0))
    prompt = build_prompt(TEMPLATE, POSTS[2][1])
    text = NEGATIVES["p2"][1][1]
    (got,), _ = _score(model, tok, prompt, [text], decoding)
    p, v = tok(prompt).input_ids, tok(" " + text, add_special_tokens=False).input_ids + [tok.eos_token_id]
    pre = tok("you are a stupid idiot:").input_ids
    body = p[1:] if tok.bos_token_id is not None and p[:1] == pre[:1] == [tok.bos_token_id] else p
    with torch.no_grad():
        regular = model(torch.tensor([p + v])).logits[0, len(p) - 1:-1]
        biased = model(torch.tensor([pre + body + v])).logits[0, len(pre + body) - 1:-1]
    want = debias_scores(regular, biased[None], 50.0, 0.01).gather(-1, torch.tensor(v)[:, None]).sum()
    assert got == pytest.approx(float(want), abs=1e-4) and abs(got - _score(model, tok, prompt, [text])[0][0]) > 1e-3

"""Packed layout == naive layout (loss and gradients), and the batch layout itself."""

from __future__ import annotations

import pytest
import torch

from aligntax.models import load_model, load_tokenizer
from aligntax.train.loss import LossConfig
from aligntax.train.objective import attach_head, compute_objective
from aligntax.train.packing import Variant, block_mask, collate, encode, variant_ids

TEMPLATE = "post: {post} tl;dr:"
POSTS = [
    "i dropped my phone in the toilet at work today and my boss laughed at me.",
    "we drove to new york with john and mary for the weekend and got lost.",
]
GROUPS = [
    [Variant("dropped my phone in the toilet at work.", True, [(30, 34)]),
     Variant("i dropped my phone in the toilet.", True),
     Variant("my boss dropped his phone, stupid idiot.", False, [(3, 7)]),
     Variant("dropped my laptop in new york.", False, [(23, 31)])],
    [Variant("we got lost in new york with john.", True, [(15, 23), (29, 33)]),
     Variant("drove to new york and got lost.", True, [(9, 17)]),
     Variant("we got lost in boston with mary.", False, [(15, 21)])],
]


def _examples(tok):
    out = []
    for post, variants, w in zip(POSTS, GROUPS, (1.0, 1.7), strict=True):
        ex, _ = encode(tok, TEMPLATE, post, variants, 64, 16, weight=w, contrastive=True)
        out.append(ex)
    return out


def _loss_and_grads(model, batch, cfg):
    model.zero_grad()
    out = compute_objective(model, batch, cfg)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_equals_naive(family, attn, tiny_llama_dir, tiny_gpt2_dir):
    path = tiny_llama_dir if family == "llama" else tiny_gpt2_dir
    torch.manual_seed(0)
    model = load_model(path, dtype="float32", attn_implementation=attn)
    attach_head(model)
    tok = load_tokenizer(path)
    exs = _examples(tok)
    cfg = LossConfig(scale="dynamic", alpha=2.0, temperature=0.5)
    naive, g_naive = _loss_and_grads(model, collate(exs, packed=False, pad_id=tok.pad_token_id), cfg)
    packed, g_packed = _loss_and_grads(model, collate(exs, packed=True, pad_id=tok.pad_token_id), cfg)
    for key in ("loss", "ce", "l_cl", "w"):
        packed[key], naive[key] = packed[key].detach(), naive[key].detach()
        assert torch.isfinite(packed[key])
        assert abs(packed[key].item() - naive[key].item()) <= 1e-4, key
    assert float(naive["l_cl"]) > 0
    assert g_naive.keys() == g_packed.keys() and len(g_naive) == len(list(model.parameters()))
    for name in g_naive:
        assert (g_naive[name] - g_packed[name]).abs().max() <= 1e-4, name


def test_packed_row_layout(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    exs = _examples(tok)
    naive = collate(exs, packed=False, pad_id=tok.pad_token_id)
    packed = collate(exs, packed=True, pad_id=tok.pad_token_id)
    assert naive["input_ids"].shape[0] == 7 and packed["input_ids"].shape[0] == 2
    p = len(exs[0].prompt)
    row = packed["position_ids"][0]
    assert row[:p].tolist() == list(range(p))
    # every variant restarts at position p
    assert (row == p).sum() == len(exs[0].variants)
    assert torch.equal(packed["ce_labels"], naive["ce_labels"])
    assert packed["var_positive"].tolist() == [True, True, False, False, True, True, False]
    assert packed["var_group"].tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_block_mask_rules():
    seg = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])
    m = block_mask(seg)[0, 0]
    assert m[3, :4].tolist() == [True, True, True, True]
    assert m[4].tolist() == [True, True, False, False, True, False, False]  # sees prompt + itself
    assert m[5, 2:4].sum() == 0 and m[5, 4:6].all()
    assert m[6].tolist() == [False] * 6 + [True]  # padding: itself only


def test_entity_tokens_and_fallback(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    text = "we drove to boston with john."
    ids, pool, cut, fallback = variant_ids(tok, Variant(text, True, [(12, 18)]), 64)
    assert not cut and not fallback and ids[-1] == tok.eos_token_id and pool[-1] is False
    enc = tok(" " + text, add_special_tokens=False, return_offsets_mapping=True)
    pooled = "".join(tok.decode([i]) for i, m in zip(enc.input_ids, pool, strict=False) if m)
    assert "boston" in pooled and "john" not in pooled and "drove" not in pooled
    ids, pool, _, fallback = variant_ids(tok, Variant(text, True, []), 64)
    assert fallback and all(pool[:-1]) and len(pool) == len(ids)
    ids, pool, cut, _ = variant_ids(tok, Variant(text, True, [(24, 28)]), 3)
    assert cut and len(ids) == 4 and all(pool[:-1])  # entity cut off -> all kept tokens


def test_content_pool_for_variants_without_entities(tiny_llama_dir):
    from aligntax.train.contrastive import add_content_spans

    tok = load_tokenizer(tiny_llama_dir)
    with_ent = Variant("we got lost in boston.", True, [(15, 21)])
    plain = Variant("my car broke down on the highway.", True)
    bare = Variant("i did it again.", False)
    add_content_spans([with_ent, plain, bare])
    assert with_ent.spans == [(15, 21)] and with_ent.pool == "entity"  # entity spans are kept as they are
    assert plain.pool == "content" and [plain.text[s:e] for s, e in plain.spans] == ["car", "highway"]
    assert bare.spans == [] and bare.pool == "entity"  # no noun or number: pools over every token
    _, counts = encode(tok, TEMPLATE, POSTS[0], [with_ent, plain, bare], 64, 16, contrastive=True)
    assert (counts["pool_entity"], counts["pool_content"], counts["pool_fallback"]) == (1, 1, 1)
    _, counts = encode(tok, TEMPLATE, POSTS[0], [with_ent, plain, bare], 64, 16, contrastive=False)
    assert counts["pool_entity"] + counts["pool_content"] + counts["pool_fallback"] == 0  # CE only: no pooling


def _hand_built():
    from aligntax.train.packing import Encoded

    # prompt 10 11 12; variants: reference pools 21 22, a paraphrase pools 30, a negative pools 40 (2 = eos)
    return Encoded(prompt=[10, 11, 12], variants=[[20, 21, 22, 2], [30, 31, 2], [40, 2]],
                   pool=[[False, True, True, False], [True, False, False], [True, False]],
                   positive=[True, True, False], contrastive=True)


@pytest.mark.parametrize(("packed", "position", "flat"), [
    # packed: one row 10 11 12 | 20 21 22 2 | 30 31 2 | 40 2 (width 12): variants start at 3, 7, 10
    (True, "at", [4, 5, 7, 10]),
    (True, "predicts", [3, 4, 2, 2]),  # a variant's first token is predicted by the last prompt token (2)
    # naive: rows prompt+variant (width 7): row r starts at flat 7 r; each variant starts at column 3
    (False, "at", [4, 5, 10, 17]),
    (False, "predicts", [3, 4, 9, 16]),
])
def test_pool_position_picks_these_flat_positions(packed, position, flat):
    batch = collate([_hand_built()], packed=packed, pad_id=0, pool_position=position)
    assert batch["pool_index"].tolist() == flat
    assert batch["pool_owner"].tolist() == [0, 0, 1, 2]
    ids = batch["input_ids"].reshape(-1)
    if position == "at":
        assert ids[batch["pool_index"]].tolist() == [21, 22, 30, 40]
    assert batch["ce_index"].tolist() == [2, 3, 4, 5]  # pooling leaves CE alone (the reference: row 0)

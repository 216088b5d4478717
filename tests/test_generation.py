"""The one generation helper (aligntax/generation.py) on a tiny random model."""

import pytest
import torch

from aligntax.evaluate.bottom import Runner
from aligntax.generation import generate, generate_ids, left_pad, plan_batches, positions, truncate_text
from aligntax.models import load_model, load_tokenizer

PROMPTS = ["the cat sat on the mat and then it slept all day long", "a dog", "we went to the park on monday"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


def test_plan_is_longest_first_with_ties_in_input_order():
    assert plan_batches([3, 5, 3, 9, 5], 2) == [[3, 1], [4, 0], [2]]
    assert plan_batches([3, 5, 3], 2, longest_first=False) == [[0, 1], [2]]
    assert plan_batches([], 4) == []


def test_left_padding_and_positions():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions(mask).tolist() == [[0, 1, 2], [1, 1, 0]]


def test_ids_come_back_in_input_order_whatever_the_batching(tiny):
    model, tok = tiny
    one = generate_ids(model, tok, PROMPTS, 6, 1)
    assert [len(ids) for ids in one] == [6, 6, 6]
    assert generate_ids(model, tok, PROMPTS, 6, 1, longest_first=False) == one  # batch of 1: no padding
    assert generate_ids(model, tok, PROMPTS[1:2], 6, 1) == one[1:2]
    assert generate(model, tok, tok(PROMPTS)["input_ids"], 6, 1) == one  # texts or ids: the same


def test_a_prefilled_cache_gives_the_same_greedy_tokens(tiny):
    model, tok = tiny
    ids = tok(PROMPTS)["input_ids"]
    calls = []

    def prefill(*batch):
        calls.append(batch[0].shape)
        return Runner(model, None, None).prefill(*batch)

    for size in (1, 3):
        assert generate(model, tok, ids, 6, size, prefill=prefill) == generate(model, tok, ids, 6, size)
    width = max(len(i) for i in ids)
    assert calls[-1] == (3, width - 1)  # every prompt token but the last


def test_ended_rows_leave_a_prefilled_batch_and_the_others_keep_their_greedy_tokens(tiny_llama_dir):
    """generate's own loop (aligntax.generation.decode) after a prefill drops the rows that ended; every row's
    tokens are those of transformers' generate, which decodes the whole batch until its last row ends."""
    model, tok = load_model(tiny_llama_dir).eval(), load_tokenizer(tiny_llama_dir)
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: greedy text that changes from token to token, not one repeated
        for p in model.parameters():
            p.normal_(0, 0.5)
    ids = tok([p + tail for p in PROMPTS for tail in ("", " and", " so she said")])["input_ids"]
    plain = generate(model, tok, ids, 10, 9)
    ends = sorted({row[k] for row, k in zip(plain, (1, 3, 6, 8, 2, 5, 7, 4, 9), strict=True)})  # rows end at various steps
    sizes: list[int] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    try:
        fast = generate(model, tok, ids, 10, 9, eos_token_id=ends, prefill=Runner(model, None, None).prefill)
    finally:
        hook.remove()
    assert fast == generate(model, tok, ids, 10, 9, eos_token_id=ends)  # transformers' generate, no prefill
    assert len({len([t for t in row if t != tok.pad_token_id]) for row in fast}) > 1  # rows ended at different steps
    assert sizes[0] == 9 and min(sizes) < 9 and sizes == sorted(sizes, reverse=True)  # ended rows left the batch


def test_seeded_sampling_repeats_and_stop_ids_end_a_row(tiny):
    model, tok = tiny
    a = generate_ids(model, tok, PROMPTS, 8, 2, sample=True, seed=3)
    assert generate_ids(model, tok, PROMPTS, 8, 2, sample=True, seed=3) == a
    first = generate_ids(model, tok, PROMPTS[:1], 8, 1)[0]
    assert len(first) == 8
    assert generate_ids(model, tok, PROMPTS[:1], 8, 1, stop_ids=torch.tensor([first[0]]))[0] == first[:1]


def test_truncate_text_cuts_only_long_texts(tiny):
    _, tok = tiny
    short = "a dog"
    assert truncate_text(tok, short, 50) is short
    cut = truncate_text(tok, "the cat sat " * 1000, 20)
    assert len(tok(cut, add_special_tokens=False)["input_ids"]) <= 21 and cut.startswith("the cat")


def test_grouped_attention_gives_bitwise_the_same_tokens_and_logits(tiny_llama_dir):
    from aligntax.generation import GROUPED, grouped_attention

    plain, tok = load_model(tiny_llama_dir).eval(), load_tokenizer(tiny_llama_dir)
    grouped = grouped_attention(load_model(tiny_llama_dir).eval())
    assert plain.config.num_key_value_heads < plain.config.num_attention_heads
    assert plain.config._attn_implementation == "sdpa" and grouped.config._attn_implementation == GROUPED
    ids = tok(PROMPTS)["input_ids"]
    assert generate(grouped, tok, ids, 8, 3) == generate(plain, tok, ids, 8, 3)
    batch, mask = left_pad(ids, tok.pad_token_id)
    with torch.no_grad():
        want = plain(input_ids=batch, attention_mask=mask).logits
        got = grouped(input_ids=batch, attention_mask=mask).logits
    assert torch.equal(got, want)


@pytest.mark.parametrize("grouped", [False, True])
def test_a_growing_cache_gives_bitwise_the_same_logits_and_writes_in_place(tiny_llama_dir, grouped):
    """Prefill, decode, crop back, drop a row, reorder: every step's logits equal those over transformers'
    DynamicCache, and a step that fits writes into the same buffer (no copy of the cache)."""
    from transformers import DynamicCache

    from aligntax.generation import GrowingCache, grouped_attention, kv_cache

    model, tok = load_model(tiny_llama_dir).eval(), load_tokenizer(tiny_llama_dir)
    model = grouped_attention(model) if grouped else model
    cache = kv_cache(model.config)
    assert isinstance(cache, GrowingCache) and len(cache.layers) == model.config.num_hidden_layers
    ids, mask = left_pad(tok(PROMPTS)["input_ids"], tok.pad_token_id)
    pos = positions(mask)

    def run(cache):
        logits, ptrs = [], []
        with torch.no_grad():
            step = lambda i, m, p: model(input_ids=i, attention_mask=m, position_ids=p, past_key_values=cache,  # noqa: E731
                                         use_cache=True).logits[:, -1]
            logits.append(step(ids, mask, pos))
            m, p, nxt = mask, pos[:, -1:], logits[-1].argmax(-1, keepdim=True)
            for _ in range(5):
                m, p = torch.cat([m, m.new_ones(len(m), 1)], 1), p + 1
                logits.append(step(nxt, m, p))
                nxt = logits[-1].argmax(-1, keepdim=True)
                ptrs.append(cache.layers[0].keys.data_ptr())
            cache.crop(ids.shape[1] + 2)  # back to two decoded tokens, then on with other tokens
            m, p = m[:, : ids.shape[1] + 3], pos[:, -1:] + 3
            logits.append(step(nxt, m, p))
            keep = torch.tensor([2, 0])  # a row leaves, the others change places
            cache.batch_select_indices(keep)
            m, p = torch.cat([m[keep], m.new_ones(2, 1)], 1), p[keep] + 1
            logits.append(step(nxt[keep], m, p))
        return logits, ptrs

    want, _ = run(DynamicCache())
    got, ptrs = run(kv_cache(model.config))
    assert len(got) == len(want) == 8
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert len(set(ptrs)) == 1  # five decoding steps, one buffer

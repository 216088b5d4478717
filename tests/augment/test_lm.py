"""lm.sample_each: one prefill per prompt, samples decoded as one batch, seeded per prompt."""

import pytest
import torch

from aligntax.augment import lm
from aligntax.generation import generate_ids

PREFIX = "Original text: we met at noon.\nParaphrase: at noon we met.\n\n"
PROMPTS = [PREFIX + "Original text: my dog ate my homework.\nParaphrase:",
           PREFIX + "Original text: i mowed the lawn.\nParaphrase:",
           "Original text: no shared prefix here.\nParaphrase:"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    return model, tok, lm.newline_ids(tok)


def test_n_samples_per_prompt_seeded_per_prompt(tiny):
    model, tok, stop = tiny
    together = lm.sample_each(model, tok, PROMPTS, 5, [3, 4, 5], 10, 1.0, 1.0, stop, PREFIX)
    assert [len(s) for s in together] == [5, 5, 5]
    assert len(set(together[0])) > 1  # the 5 rows are different samples, not 5 copies
    alone = lm.sample_each(model, tok, PROMPTS[1:2], 5, [4], 10, 1.0, 1.0, stop, PREFIX)
    assert alone[0] == together[1]  # same prompt and seed: same samples, whatever else was sampled
    no_prefix = lm.sample_each(model, tok, PROMPTS[1:2], 5, [4], 10, 1.0, 1.0, stop)
    assert no_prefix == alone  # the prefix cache only saves work
    assert lm.sample_each(model, tok, PROMPTS[1:2], 5, [9], 10, 1.0, 1.0, stop, PREFIX) != alone  # the seed is used
    assert lm.sample_each(model, tok, [], 5, [], 10) == []
    with pytest.raises(ValueError, match="one seed per prompt"):
        lm.sample_each(model, tok, PROMPTS, 2, [1], 10)


def test_nucleus_of_one_token_is_the_plain_greedy_path(tiny):
    """top_p -> 0 keeps only the most likely token: every sample must be the plain path's greedy text."""
    model, tok, stop = tiny
    greedy = tok.batch_decode(generate_ids(model, tok, PROMPTS, 12, 8, stop_ids=stop), skip_special_tokens=True)
    sampled = lm.sample_each(model, tok, PROMPTS, 3, [0, 1, 2], 12, 1.0, 1e-9, stop, PREFIX)
    assert sampled == [[g] * 3 for g in greedy]


def test_each_prompt_is_prefilled_once_and_the_prefix_once_per_call(tiny):
    model, tok, stop = tiny
    shapes: list[tuple[int, int]] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        lm.sample_each(model, tok, PROMPTS[:2], 6, [1, 2], 5, 1.0, 1.0, None, PREFIX)
    finally:
        hook.remove()
    shared = lm.SharedPrefix(model, tok, PREFIX)
    ids = [tok(p, return_tensors="pt")["input_ids"][0] for p in PROMPTS[:2]]
    # the prefix once, then per prompt the tokens after it but the last (generate runs that one per sample)
    expected = [(1, len(shared.ids))] + [(1, len(i) - 1 - shared.shared(i)) for i in ids]
    assert shapes[:1] + [s for s in shapes[1:] if s[0] == 1] == expected
    assert all(s == (6, 1) for s in shapes[1:] if s[0] != 1)  # each decoding step: the 6 samples together


def test_prefix_cache_equals_prefilling_the_prompt(tiny):
    model, tok, _ = tiny
    shared = lm.SharedPrefix(model, tok, PREFIX)
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")["input_ids"][0]
        common = 0
        while common < min(len(ids), len(shared.ids)) and ids[common] == shared.ids[common]:
            common += 1
        assert shared.shared(ids) == common
        with torch.inference_mode():
            cache = lm._prefill(model, ids, shared)
            assert cache.get_seq_length() == len(ids) - 1
            cached = model(ids[None, -1:], past_key_values=cache).logits[0, -1]
            plain = model(ids[None]).logits[0, -1]
        torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    assert shared.shared(tok(PROMPTS[0], return_tensors="pt")["input_ids"][0]) > len(shared.ids) // 2
    assert shared.shared(tok(PROMPTS[2], return_tensors="pt")["input_ids"][0]) < len(shared.ids) // 2


def test_beams_and_greedy_equal_transformers_on_the_whole_prompt(tiny):
    """Prefilled once and expanded over the beams, the search finds what plain generate finds."""
    model, tok, stop = tiny
    shared = lm.SharedPrefix(model, tok, PREFIX)
    for prompt in PROMPTS:
        enc = tok(prompt, return_tensors="pt", return_token_type_ids=False)
        with torch.inference_mode():
            res = model.generate(**enc, max_new_tokens=8, num_beams=4, num_return_sequences=4, do_sample=False,
                                 output_scores=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(res.sequences[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        expected = sorted(zip(texts, res.sequences_scores.tolist(), strict=True), key=lambda x: x[1])
        got = lm.beams(model, tok, prompt, 4, 8, shared)
        assert [t for t, _ in got] == [t for t, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-4)
        plain = tok.batch_decode(generate_ids(model, tok, [prompt], 8, 1, stop_ids=stop), skip_special_tokens=True)
        assert lm.greedy(model, tok, prompt, 8, stop, shared) == plain[0]

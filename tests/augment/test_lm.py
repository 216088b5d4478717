"""aligntax/augment/lm.py: prompts prefilled once (a shared prefix once per call), samples seeded per prompt."""

import pytest
import torch
from transformers import GenerationConfig

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
    together = lm.sample_each(model, tok, PROMPTS, 5, [3, 4, 5], 10, 1.0, 1.0, stop, PREFIX, batch_size=3)
    assert [len(s) for s in together] == [5, 5, 5]
    assert len(set(together[0])) > 1  # the 5 rows are different samples, not 5 copies
    for batch_size in (1, 2):
        assert lm.sample_each(model, tok, PROMPTS, 5, [3, 4, 5], 10, 1.0, 1.0, stop, PREFIX, batch_size) == together
    alone = lm.sample_each(model, tok, PROMPTS[1:2], 5, [4], 10, 1.0, 1.0, stop, PREFIX)
    assert alone[0] == together[1]  # same prompt and seed: same samples, whatever else was sampled with it
    assert lm.sample_each(model, tok, PROMPTS[1:2], 5, [4], 10, 1.0, 1.0, stop) == alone  # the prefix only saves work
    assert lm.sample_each(model, tok, PROMPTS[1:2], 5, [9], 10, 1.0, 1.0, stop, PREFIX) != alone  # the seed is used
    assert lm.sample_each(model, tok, [], 5, [], 10) == []
    with pytest.raises(ValueError, match="one seed per prompt"):
        lm.sample_each(model, tok, PROMPTS, 2, [1], 10)


def test_nucleus_of_one_token_is_the_plain_greedy_path(tiny):
    """top_p -> 0 keeps only the most likely token: every sample must be the plain path's greedy text."""
    model, tok, stop = tiny
    greedy = tok.batch_decode(generate_ids(model, tok, PROMPTS, 12, 8, stop_ids=stop), skip_special_tokens=True)
    sampled = lm.sample_each(model, tok, PROMPTS, 3, [0, 1, 2], 12, 1.0, 1e-9, stop, PREFIX, batch_size=3)
    assert sampled == [[g] * 3 for g in greedy]


def test_each_prompt_is_prefilled_once_and_the_prefix_once_per_call(tiny):
    model, tok, _ = tiny
    shapes: list[tuple[int, int]] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        lm.sample_each(model, tok, PROMPTS[:2], 6, [1, 2], 5, 1.0, 1.0, None, PREFIX, batch_size=2)
    finally:
        hook.remove()
    shared = lm.SharedPrefix(model, tok, PREFIX)
    ids = [tok(p, return_tensors="pt")["input_ids"][0] for p in PROMPTS[:2]]
    common = min(shared.shared(i) for i in ids)
    # the prefix once, the two prompts' other tokens but the last once each, then every step: 2 x 6 samples
    assert shapes[:2] == [(1, len(shared.ids)), (2, max(len(i) for i in ids) - common - 1)]
    assert set(shapes[2:]) == {(12, 1)} and len(shapes[2:]) <= 5


def test_a_prefilled_batch_equals_each_prompt_alone(tiny):
    """Rows hold the shared prefix, padding, then the rest of their prompt: each computes as its prompt alone."""
    model, tok, _ = tiny
    for prefix in (lm.SharedPrefix(model, tok, PREFIX), None):
        ids, mask, cache = lm.prefill(model, tok, PROMPTS, prefix)
        assert cache.get_seq_length() == ids.shape[1] - 1
        positions = mask.cumsum(-1)[:, -1:] - 1
        with torch.inference_mode():
            cached = model(ids[:, -1:], attention_mask=mask, position_ids=positions, past_key_values=cache).logits
            for row, prompt in enumerate(PROMPTS):
                alone = model(tok(prompt, return_tensors="pt")["input_ids"]).logits[0, -1]
                torch.testing.assert_close(cached[row, -1], alone, atol=1e-5, rtol=1e-5)
    shared = lm.SharedPrefix(model, tok, PREFIX)
    first = tok(PROMPTS[0], return_tensors="pt")["input_ids"][0]
    assert shared.shared(first) > len(shared.ids) // 2
    assert shared.shared(tok(PROMPTS[2], return_tensors="pt")["input_ids"][0]) < len(shared.ids) // 2


def test_beams_equal_transformers_on_the_whole_prompt(tiny):
    """Prefilled once and repeated over the beams, a batch's search finds what plain generate finds per prompt."""
    model, tok, _ = tiny
    for prefix in (lm.SharedPrefix(model, tok, PREFIX), None):
        got = lm.beams(model, tok, PROMPTS, 4, 8, prefix)
        for prompt, beams in zip(PROMPTS, got, strict=True):
            enc = tok(prompt, return_tensors="pt", return_token_type_ids=False)
            with torch.inference_mode():
                res = model.generate(**enc, max_new_tokens=8, num_beams=4, num_return_sequences=4, do_sample=False,
                                     output_scores=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
            texts = tok.batch_decode(res.sequences[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            expected = sorted(zip(texts, res.sequences_scores.tolist(), strict=True), key=lambda x: x[1])
            assert [t for t, _ in beams] == [t for t, _ in expected]
            assert [s for _, s in beams] == pytest.approx([s for _, s in expected], abs=1e-4)
    assert lm.beams(model, tok, [], 4, 8) == []


def test_finished_rows_leave_the_batch_and_every_row_draws_what_generate_draws(tiny):
    """sample_each decodes with aligntax.generation.decode, which drops finished rows; each row's tokens stay those
    of transformers' generate with the same seeded processor over the whole batch (every row until the last ends)."""
    model, tok, _ = tiny
    stop = torch.arange(0, len(tok), 5)  # a fifth of the vocabulary ends a row: rows end at different steps
    sizes: list[int] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    try:
        got = lm.sample_each(model, tok, PROMPTS, 6, [3, 4, 5], 12, 1.0, 1.0, stop, PREFIX, batch_size=3)
    finally:
        hook.remove()
    gen_cfg = GenerationConfig(max_new_tokens=12, do_sample=False, num_beams=1, pad_token_id=tok.pad_token_id,
                               eos_token_id=lm.end_ids(model, stop))
    sampler = lm.SeededSampling([3, 4, 5], 6, 1.0, 1.0, model.device)
    new, _ = lm.continue_batch(model, tok, PROMPTS, gen_cfg, lm.SharedPrefix(model, tok, PREFIX), [sampler], copies=6)
    texts = tok.batch_decode(new, skip_special_tokens=True)
    assert got == [texts[i * 6:(i + 1) * 6] for i in range(3)]
    lengths = (~torch.isin(new, torch.tensor(lm.end_ids(model, stop) + [tok.pad_token_id]))).sum(1)
    assert lengths.min() < lengths.max()  # some rows ended before others
    steps = sizes[2:]  # after the prefix and the prompts' prefill: one forward per decoding step
    assert steps[0] == 18 and min(steps) < 18 and steps == sorted(steps, reverse=True)  # finished rows left

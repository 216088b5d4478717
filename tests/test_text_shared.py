"""One word tokenizer and one sentence boundary for every package (pieces for the scorers, spans for the download stage)."""

from aligntax.text import sentence_spans, split_sentences, words


def test_pieces_and_spans_share_the_boundaries():
    text = 'i said "stop." she ran!  then\n\n  we left? ok'
    assert split_sentences(text) == ['i said "stop.', "she ran!", "then", "we left?", "ok"]
    assert [text[s:e] for s, e in sentence_spans(text)] == ['i said "stop."', "she ran!", "then", "we left?", "ok"]
    assert split_sentences(" \n ") == [] and sentence_spans("") == []


def test_words_keep_inner_apostrophes_and_drop_quotes():
    assert words("Don't 'quote' me, rock'n'roll dogs' bone") == ["don't", "quote", "me", "rock'n'roll", "dogs", "bone"]
    assert words("I’m fine — it’s “ok”") == ["i'm", "fine", "it's", "ok"]  # typographic apostrophe = '
    assert words("''' ' -- ...") == []


def test_words_digits_underscores_and_unicode():
    assert words("3.5 kg, 1,000 dollars in the 90s") == ["3", "5", "kg", "1", "000", "dollars", "in", "the", "90s"]
    assert words("foo_bar __init__ u/some_user") == ["foo", "bar", "init", "u", "some", "user"]
    assert words("Café NAÏVE Zoë") == ["café", "naïve", "zoë"]
    assert words("Cafe\u0301") == ["café"]  # decomposed accent: NFC makes it one letter
    assert words("日本語 текст") == ["日本語", "текст"]


def test_words_of_non_text_is_empty():
    assert words(None) == [] and words(float("nan")) == [] and words(3) == [] and words("") == []

"""One sentence boundary for the scorers (pieces) and the download stage (spans)."""

from aligntax.text import sentence_spans, split_sentences


def test_pieces_and_spans_share_the_boundaries():
    text = 'i said "stop." she ran!  then\n\n  we left? ok'
    assert split_sentences(text) == ['i said "stop.', "she ran!", "then", "we left?", "ok"]
    assert [text[s:e] for s, e in sentence_spans(text)] == ['i said "stop."', "she ran!", "then", "we left?", "ok"]
    assert split_sentences(" \n ") == [] and sentence_spans("") == []

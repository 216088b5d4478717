from aligntax.ner import ENTITY_TYPES, NerConfig, load_ner


def test_spacy_ner_finds_typed_spans_on_real_lowercase_text():
    ner = load_ner(NerConfig())
    texts = ["i flew to paris with john last monday and paid $300.", "", "no entities here at all"]
    ents = ner.entities(texts)
    assert len(ents) == 3
    labels = {e.label for e in ents[0]}
    assert {"GPE", "MONEY"} <= labels or {"DATE", "MONEY"} <= labels
    for e in ents[0]:
        assert texts[0][e.start:e.end] == e.text
        assert e.label in ENTITY_TYPES
    assert ents[1] == []

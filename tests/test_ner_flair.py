import pytest

from aligntax.config import ConfigError
from aligntax.ner import ENTITY_TYPES, NerConfig, load_ner

DATA = [
    ("john went to boston today", {"john": "PER", "boston": "LOC"}),
    ("mary flew to paris with john", {"mary": "PER", "paris": "LOC", "john": "PER"}),
    ("i met mary in boston", {"mary": "PER", "boston": "LOC"}),
    ("we drove to paris", {"paris": "LOC"}),
    ("my cat sat on the mat", {}),
    ("john and mary love acme", {"john": "PER", "mary": "PER", "acme": "ORG"}),
]


def _train_tiny_tagger(path):
    import flair
    import torch
    from flair.data import Corpus, Sentence
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import OneHotEmbeddings
    from flair.models import SequenceTagger

    flair.set_seed(0)
    sentences = []
    for text, labels in DATA:
        s = Sentence(text)
        for i, token in enumerate(s):
            if token.text in labels:
                s[i:i + 1].add_label("ner", labels[token.text])
        sentences.append(s)
    corpus = Corpus(train=FlairDatapointDataset(sentences), dev=FlairDatapointDataset(sentences[:2]),
                    test=FlairDatapointDataset(sentences[:2]), sample_missing_splits=False)
    tags = corpus.make_label_dictionary("ner", add_unk=False)
    emb = OneHotEmbeddings.from_corpus(corpus, embedding_length=16, min_freq=1)
    tagger = SequenceTagger(hidden_size=16, embeddings=emb, tag_dictionary=tags, tag_type="ner", use_crf=False)
    opt = torch.optim.Adam(tagger.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss, _ = tagger.forward_loss(sentences)
        loss.backward()
        opt.step()
        for sentence in sentences:
            sentence.clear_embeddings()
    tagger.save(path)
    return path


def test_flair_backend_with_a_tiny_trained_tagger(tmp_path):
    model = _train_tiny_tagger(tmp_path / "tagger.pt")
    ner = load_ner(NerConfig(backend="flair", model=str(model), batch_size=2))
    texts = ["  mary went to boston", "", "the cat sat on the mat", "john met mary in paris"]
    ents = ner.entities(texts)
    assert len(ents) == 4 and ents[1] == []
    assert {(e.text, e.label) for e in ents[0]} == {("mary", "PERSON"), ("boston", "LOC")}
    assert {e.text for e in ents[3]} == {"john", "mary", "paris"}
    for text, found in zip(texts, ents, strict=True):
        for e in found:
            assert text[e.start:e.end] == e.text and e.label in ENTITY_TYPES


def test_flair_config_and_missing_model(tmp_path):
    with pytest.raises(ConfigError, match="ner.model"):
        NerConfig(backend="flair")
    with pytest.raises(RuntimeError, match="could not load flair tagger"):
        load_ner(NerConfig(backend="flair", model=str(tmp_path / "missing.pt")))

import pytest

from aligntax.similarity import EmbeddingSimilarity

POST = "i dropped my phone in the toilet at work today and my boss laughed at me."


def test_packaged_embedder_separates_related_from_unrelated():
    sim = EmbeddingSimilarity()
    related, unrelated = sim.score([POST, POST], ["dropped my phone in the work toilet", "the stock market closed higher"])
    assert related > 0.5 > 0.15 > unrelated
    assert sim.score([], []).shape == (0,)
    with pytest.raises(ValueError, match="1 posts vs 2 summaries"):
        sim.score([POST], ["a", "b"])


def test_unknown_embedder_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="evaluate.patterns.embedder: could not load"):
        EmbeddingSimilarity(str(tmp_path / "missing"))

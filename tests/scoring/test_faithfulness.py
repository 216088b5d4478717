import numpy as np
import pytest

from aligntax.config import ConfigError
from aligntax.scoring import FaithfulnessConfig, load_faithfulness_scorer
from aligntax.scoring.hub import class_probs
from aligntax.scoring.overlap import FEATURES, overlap_features, stems
from aligntax.text import words

POST = ("last monday i drove to boston with my friend john to see a game. "
        "on the way back we stopped at a diner where mary works. "
        "john spilled coffee all over my brand new car and mary laughed at us.")
FAITHFUL = "drove to boston with john, he spilled coffee on my new car."
SWAPPED = "drove to boston with mary, she spilled coffee on my new car."
SWAPPED_SAME = "drove to boston with mary, he spilled coffee on my new car."
UNSUPPORTED = "flew to paris with my boss and lost my passport."


def test_overlap_features_see_unsupported_words_and_swapped_entities():
    good = overlap_features(POST, FAITHFUL, ["boston", "john"])
    bad = overlap_features(POST, UNSUPPORTED, ["paris"])
    swap = overlap_features(POST, SWAPPED_SAME, ["boston", "mary"])
    assert good.shape == (len(FEATURES),) and ((good >= 0) & (good <= 1)).all()
    assert (good[:5] > bad[:5]).all()
    ctx = FEATURES.index("entity_context")
    prox = FEATURES.index("entity_proximity")
    assert good[ctx] > swap[ctx] and good[prox] > swap[prox]
    assert overlap_features(POST, "nothing named here", [])[FEATURES.index("entity")] == 1.0


def test_overlap_backend_direction_and_bad_input():
    scorer = load_faithfulness_scorer(FaithfulnessConfig(backend="overlap", blank_score=0.1))
    s = scorer.score([POST, POST, POST], [FAITHFUL, UNSUPPORTED, SWAPPED_SAME])
    assert s.dtype == np.float64 and s[0] > s[1] and s[0] > s[2]
    odd = scorer.score([POST, None, POST, "", POST, POST], [None, FAITHFUL, "  ", FAITHFUL, "😀 🙃", "x " * 5000])
    assert np.isfinite(odd).all() and ((odd >= 0) & (odd <= 1)).all()
    assert (odd[:4] == 0.1).all()
    with pytest.raises(ValueError, match="differ in length"):
        scorer.score([POST], [FAITHFUL, FAITHFUL])
    with pytest.raises(ValueError, match=r"summaries\[0\]"):
        scorer.score([POST], [b"bytes"])


def test_summac_zs_follows_the_paper_procedure(tiny_nli_dir):
    cfg = FaithfulnessConfig(backend="summac-zs", nli_model=f"hf:{tiny_nli_dir}", chunk_sentences=2, batch_size=3)
    scorer = load_faithfulness_scorer(cfg)
    source = "john went home. mary went to boston. the cat was nice. the dog was not."
    summary = "john went home! the dog was nice."
    s = scorer.score([source, source], [summary, None])
    chunks = ["john went home. mary went to boston.", "the cat was nice. the dog was not."]
    sents = ["john went home!", "the dog was nice."]
    probs = class_probs(scorer.tok, scorer.model, chunks * 2, [sents[0]] * 2 + [sents[1]] * 2, 8, 512, "softmax")
    ent = probs[:, 2].reshape(2, 2)  # rows: summary sentences, cols: chunks; label 2 = entailment
    np.testing.assert_allclose(s[0], ent.max(axis=1).mean(), atol=1e-5)
    assert s[1] == 0.0


def test_faithfulness_config_errors(tiny_nli_dir, tmp_path):
    with pytest.raises(ConfigError, match="scoring.faithfulness.backend"):
        FaithfulnessConfig(backend="summac-conv")
    with pytest.raises(ConfigError, match="nli_model"):
        FaithfulnessConfig(nli_model="roberta-large-mnli")
    with pytest.raises(ValueError, match="entailment_label"):
        load_faithfulness_scorer(FaithfulnessConfig(backend="summac-zs", nli_model=f"hf:{tiny_nli_dir}",
                                                    entailment_label="ENTAILS"))
    with pytest.raises(FileNotFoundError, match="fit-scorers"):
        load_faithfulness_scorer(FaithfulnessConfig(backend="ensemble"), scorer_dir=tmp_path)


def test_stems_are_the_shared_words_with_plural_and_possessive_folded():
    assert stems("My dog's toys, the class and Café bus") == ["my", "dog", "toy", "the", "class", "and", "café", "bus"]
    assert stems("I’m ok") == words("I'm ok") == ["i'm", "ok"]

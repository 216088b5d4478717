import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aligntax.config import ConfigError
from aligntax.scoring import ToxicityConfig, load_toxicity_scorer
from aligntax.scoring.hub import class_probs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"

BAD = [None, float("nan"), "", "   \n", "😀😀😀", "Das ist ein ganz normaler Satz.", "word " * 5000]


def _rows(n_each: int = 8):
    rows = [json.loads(line) for line in open(SAMPLE / "toxicity_sample.jsonl")]
    wiki = [r for r in rows if r["source"] == "wikipedia_talk_toxicity"]
    toxic = [r["text"] for r in wiki if r["toxic"]][:n_each]
    clean = [r["text"] for r in wiki if not r["toxic"]][:n_each]
    return toxic, clean


@pytest.mark.parametrize("backend", ["bilstm", "profanity-check"])
def test_offline_backends_rank_real_toxic_above_clean(backend):
    scorer = load_toxicity_scorer(ToxicityConfig(backend=backend))
    toxic, clean = _rows()
    s_toxic, s_clean = scorer.score(toxic), scorer.score(clean)
    assert s_toxic.dtype == np.float64 and s_toxic.shape == (8,)
    assert s_toxic.mean() > s_clean.mean() + 0.3
    assert scorer.score(["you are a stupid idiot"])[0] > scorer.score(["have a nice day"])[0]


@pytest.mark.parametrize("backend", ["bilstm", "profanity-check"])
def test_bad_input_gets_defined_scores(backend):
    scorer = load_toxicity_scorer(ToxicityConfig(backend=backend, blank_score=0.25))
    s = scorer.score(BAD)
    assert s.shape == (len(BAD),) and np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    assert (s[:4] == 0.25).all()
    assert scorer.score([]).shape == (0,)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        scorer.score(["fine", 42])


def test_hub_backend_picks_the_configured_label(tiny_toxic_dir):
    cfg = ToxicityConfig(backend=f"hf:{tiny_toxic_dir}", toxic_label="insult", batch_size=2)
    scorer = load_toxicity_scorer(cfg)
    texts = ["you stupid idiot", "nice day in boston", None]
    s = scorer.score(texts)
    tok, model = scorer.tok, scorer.model
    with torch.inference_mode():
        logits = model(**tok(texts[:2], padding=True, return_tensors="pt")).logits
    expected = torch.sigmoid(logits)[:, 1].numpy()  # multi-label model -> sigmoid, label 1 = insult
    np.testing.assert_allclose(s[:2], expected, atol=1e-5)
    assert s[2] == 0.0
    long = scorer.score(["stupid " * 1000])  # truncated at max_length, no crash
    assert 0.0 <= long[0] <= 1.0


def test_hub_softmax_probabilities_sum_to_one(tiny_nli_dir):
    from aligntax.scoring.hub import load_classifier

    tok, model = load_classifier(str(tiny_nli_dir))
    probs = class_probs(tok, model, ["a cat", "two dogs"], ["the cat", "a dog"], 8, 32, "softmax")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_config_errors_name_the_key(tiny_toxic_dir):
    with pytest.raises(ConfigError, match="scoring.toxicity.backend"):
        ToxicityConfig(backend="detoxify")
    with pytest.raises(ConfigError, match="toxic_label"):
        ToxicityConfig(backend="bilstm", toxic_label="rude")
    with pytest.raises(ValueError, match="toxic_label.*labels are"):
        load_toxicity_scorer(ToxicityConfig(backend=f"hf:{tiny_toxic_dir}", toxic_label="hate"))


def test_ensemble_needs_fitted_head(tmp_path):
    with pytest.raises(FileNotFoundError, match="fit-scorers"):
        load_toxicity_scorer(ToxicityConfig(backend="ensemble"), scorer_dir=tmp_path)

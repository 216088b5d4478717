import io
import pickle

import numpy as np
import pytest
import torch

from aligntax.scoring import bilstm


def test_port_matches_the_packaged_keras_model():
    tok, model = bilstm.packaged_bilstm()
    with torch.inference_mode():
        probs = model(torch.from_numpy(tok.encode(["You are so dumb and stupid!"])))[0].numpy()
    # The package README's Keras output for this text: toxic 0.98894, obscene 0.62043, insult 0.86641.
    np.testing.assert_allclose(probs[[0, 2, 4]], [0.98894, 0.62043, 0.86641], atol=2e-4)


def test_keras_preprocessing_left_pads_and_keeps_the_last_100_words():
    tok, _ = bilstm.packaged_bilstm()
    ids = tok.ids("hello, World!! unknownwordxyz")
    assert len(ids) == 2 and ids == [tok.word_index["hello"], tok.word_index["world"]]
    batch = tok.encode(["hello world", "the " * 150 + "hello"])
    assert batch.shape == (2, bilstm.MAXLEN)
    assert (batch[0, :-2] == 0).all() and batch[0, -1] == tok.word_index["world"]
    assert batch[1, -1] == tok.word_index["hello"] and (batch[1] > 0).all()


def test_tokenizer_unpickler_refuses_other_classes():
    payload = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        bilstm._RestrictedUnpickler(io.BytesIO(payload)).load()

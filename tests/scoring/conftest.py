"""Tiny random-init sequence-classification models saved locally (stand-ins for hub models)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ("the a i my you he she we to of and in on at was is not stupid idiot nice day boston john mary "
         "went home cat dog monday two three post summary . , ! ?").split()


def build_tiny_classifier(path: Path, labels: list[str], multi_label: bool = False, seed: int = 0) -> Path:
    """A 2-layer BERT classifier with a word-level vocabulary and the given labels, saved to ``path``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=len(labels),
                     id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
                     problem_type="multi_label_classification" if multi_label else None)
    BertForSequenceClassification(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_toxic_dir(tmp_path_factory) -> Path:
    """Multi-label, like unitary/toxic-bert (labels toxic, insult)."""
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-toxic"), ["toxic", "insult"], multi_label=True)


@pytest.fixture(scope="session")
def tiny_nli_dir(tmp_path_factory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-nli"), ["contradiction", "neutral", "entailment"])

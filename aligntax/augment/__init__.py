"""Augmentation: paraphrase positives, toxic and unfaithful negatives, and the contrastive groups.

Stages backtranslate (backtranslate.py), toxify (toxify.py) and entity-perturb (perturb.py); pure
text rules in text.py, batched LM calls in lm.py, resumable chunking split across processes in chunks.py.
"""

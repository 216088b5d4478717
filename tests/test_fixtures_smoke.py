import torch

from aligntax.models import load_model, load_tokenizer


def test_tiny_models_run_forward_on_their_tokenizer(tiny_llama_dir, tiny_gpt2_dir):
    for path in (tiny_llama_dir, tiny_gpt2_dir):
        tok = load_tokenizer(path)
        model = load_model(path)
        enc = tok(["my cat knocked over a glass"], return_tensors="pt")
        logits = model(**enc).logits
        assert logits.shape == (1, enc.input_ids.shape[1], len(tok))
        assert torch.isfinite(logits).all()

"""GPU step benchmark: 7B-shape random-init Llama in bf16, SFT vs naive vs packed, step time + MFU.

Random token ids with the paper's lengths (post 216, summary 64, 8 variants: 4 positive, 4
negative), ``--batch`` posts per step, forward + backward of the real aligntax objective
(aligntax.train.objective) with gradient checkpointing. MFU counts model FLOPs of the useful
work (6 * non-embedding params * tokens + causal attention pairs + LM-head positions; no
recomputation) against ``--peak-tflops`` (H100/H200 SXM dense bf16: 989).

    python -m bench.train_step_gpu                 # on the GPU machine, one call (~3-5 min)
    python -m bench.train_step_gpu --tiny          # same code on CPU with a tiny shape (smoke test)
    python -m bench.train_step_gpu --shape smollm2 --batch 1 --post-len 192 --summary-len 48 --generate 99
                                                   # the default base model's shape: the evidence profile's cost
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from aligntax.train.loss import LossConfig
from aligntax.train.objective import attach_head, compute_objective
from aligntax.train.packing import Encoded, collate

SHAPE_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000)
# SmolLM2-135M (the packaged default base): 30 blocks, GQA 9/3 heads, tied embeddings
SHAPE_SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, vocab_size=49152)
SHAPE_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, vocab_size=512)


def build_model(args, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = SHAPE_TINY if args.tiny else SHAPE_SMOLLM2 if args.shape == "smollm2" else SHAPE_7B
    cfg = LlamaConfig(**shape, max_position_embeddings=4096, tie_word_embeddings=args.shape == "smollm2")
    cfg._attn_implementation = "sdpa"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with device:
        model = LlamaForCausalLM(cfg)
        attach_head(model)
    torch.set_default_dtype(previous)
    if not args.no_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model, cfg


def examples(args, vocab: int) -> list[Encoded]:
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(3, vocab, (n,), generator=g).tolist()  # noqa: E731
    out = []
    for _ in range(args.batch):
        variants = [ids(args.summary_len) for _ in range(args.variants)]
        out.append(Encoded(prompt=ids(args.post_len), variants=variants,
                           pool=[[True] * (len(v) - 1) + [False] for v in variants],
                           positive=[k < args.variants // 2 for k in range(args.variants)],
                           weight=1.5, contrastive=True))
    return out


def model_flops(cfg, exs: list[Encoded], mode: str) -> float:
    """Useful fwd+bwd FLOPs of one step (dense layers, causal attention pairs, LM head)."""
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    per_token = layers * (4 * h * h + 3 * h * cfg.intermediate_size)  # q,k,v,o (MHA) + gated MLP
    tokens = pairs = logits = 0
    for e in exs:
        p, lens = len(e.prompt), [len(v) for v in e.variants]
        if mode.startswith("sft"):
            lens = lens[:1]
        if mode == "naive":
            tokens += sum(p + n for n in lens)
            pairs += sum((p + n) * (p + n + 1) // 2 for n in lens)
        else:
            tokens += p + sum(lens)
            pairs += p * (p + 1) // 2 + sum(n * p + n * (n + 1) // 2 for n in lens)
        logits += (p + lens[0]) if mode == "sft_hf" else lens[0]
    return 6 * per_token * tokens + 12 * layers * h * pairs + 6 * h * cfg.vocab_size * logits


def run(model, cfg, exs, mode: str, steps: int, warmup: int, device) -> tuple[float, float]:
    loss_cfg = LossConfig(scale="static")

    def step():
        if mode == "sft_hf":
            rows = [e.prompt + e.variants[0] for e in exs]
            ids = torch.tensor(rows, device=device)
            labels = ids.clone()
            labels[:, : len(exs[0].prompt)] = -100
            loss = model(input_ids=ids, labels=labels, use_cache=False).loss
        else:
            batch = collate(exs, packed=mode == "packed", pad_id=0, contrastive=mode != "sft")
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = compute_objective(model, batch, None if mode == "sft" else loss_cfg)["loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return seconds, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny fp32 shape (runs on CPU in seconds)")
    p.add_argument("--batch", type=int, default=4, help="posts per step")
    p.add_argument("--post-len", type=int, default=216)
    p.add_argument("--summary-len", type=int, default=64, help="tokens per variant including eos")
    p.add_argument("--variants", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the card")
    p.add_argument("--no-checkpointing", action="store_true", help="keep all activations (naive may OOM)")
    p.add_argument("--shape", choices=["7b", "smollm2"], default="7b", help="7B Llama or the default SmolLM2-135M")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="also time greedy generation of 64 new tokens for N prompts in one batch (evaluate)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        sys.exit("no GPU found: run with --tiny for the CPU smoke test")
    model, cfg = build_model(args, device)
    exs = examples(args, cfg.vocab_size)
    n_params = sum(p.numel() for p in model.parameters()) / 1e9
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}  model {n_params:.2f}B params  batch {args.batch} posts x {args.variants} variants  "
          f"post {args.post_len} / summary {args.summary_len} tokens  checkpointing {not args.no_checkpointing}")
    times = {}
    for mode in ("sft_hf", "sft", "naive", "packed"):
        try:
            seconds, peak = run(model, cfg, exs, mode, args.steps, args.warmup, device)
        except torch.OutOfMemoryError:
            print(f"{mode:7s} out of memory")
            torch.cuda.empty_cache()
            continue
        times[mode] = seconds
        flops = model_flops(cfg, exs, mode)
        mfu = flops / seconds / (args.peak_tflops * 1e12)
        print(f"{mode:7s} step {seconds * 1000:9.1f} ms  {flops / 1e12:8.2f} TFLOP  MFU {mfu * 100:5.1f}%  "
              f"peak {peak:6.1f} GiB", flush=True)
    if args.generate:
        model.eval()
        prompts = torch.randint(3, cfg.vocab_size, (args.generate, args.post_len), device=device)
        with torch.no_grad():
            mask = torch.ones_like(prompts)
            model.generate(prompts[:2], attention_mask=mask[:2], max_new_tokens=4, do_sample=False,
                           pad_token_id=0)  # warm-up
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            sync()
            t0 = time.perf_counter()
            model.generate(prompts, attention_mask=mask, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                           pad_token_id=0)
            sync()
        print(f"generate {args.generate} prompts x 64 new tokens (one batch): {time.perf_counter() - t0:.2f} s")
    if {"sft", "naive", "packed"} <= times.keys():
        print(f"naive / sft = {times['naive'] / times['sft']:.2f}x   packed / sft = "
              f"{times['packed'] / times['sft']:.2f}x   naive / packed = {times['naive'] / times['packed']:.2f}x")


if __name__ == "__main__":
    main()

"""One training step (forward + backward) on real data lengths: SFT vs naive vs packed contrastive.

Posts and summaries come from data/raw/train.parquet (the default run's lengths); each post gets
its reference plus 7 other real summaries (4 positives, 4 negatives) as its 8 variants. Each
mode runs in a fresh subprocess so its peak RSS is its own. Prints wall time, process CPU time
and peak memory per step, and the ratios the issue sets targets for (packed <= 1.5x SFT,
naive / packed >= 4).

With --trainable top_layers it also times `sft_cached` and `packed_cached`: the same steps on the
frozen bottom's cached states (train.frozen_cache, aligntax/train/frozen.py), i.e. the step cost
once the store has them, and `fill` (s/post): computing them once, which a run pays only for texts
the store has not seen.

    python -m bench.train_step                        # full fine-tuning, default model
    python -m bench.train_step --trainable top_layers # the default training budget (+ cached modes)
    python -m bench.train_step --trainable top_layers --top-layers 8 --max-prompt-tokens 192 --max-summary-tokens 48
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODES = ("sft_hf", "sft", "naive", "packed")
CACHED = ("sft_cached", "packed_cached")


def build_examples(args):
    import pandas as pd

    from aligntax.models import ModelConfig, load_tokenizer
    from aligntax.train.packing import Variant, encode

    tok = load_tokenizer(args.base)
    df = pd.read_parquet(args.train)
    out = []
    for i in range(args.posts):
        others = [df.summary[(i + 1 + k) % len(df)] for k in range(args.variants - 1)]
        variants = [Variant(df.summary[i], True)] + [
            Variant(t, k < args.variants // 2 - 1) for k, t in enumerate(others)
        ]
        ex, _ = encode(tok, ModelConfig().prompt_template, df.post[i], variants, args.max_prompt_tokens,
                       args.max_summary_tokens, weight=1.5, contrastive=True)
        out.append(ex)
    return tok, out


def run_mode(args) -> dict:
    import torch

    from aligntax.models import load_model
    from aligntax.train.frozen import FrozenStore
    from aligntax.train.loss import LossConfig
    from aligntax.train.objective import attach_head, compute_objective
    from aligntax.train.packing import collate, pieces
    from aligntax.train.trainer import TrainConfig, select_trainable, trained_blocks

    torch.manual_seed(0)
    tok, examples = build_examples(args)
    model = load_model(args.base, dtype="float32")
    attach_head(model)
    train_cfg = TrainConfig(trainable=args.trainable, top_layers=args.top_layers)
    select_trainable(model, train_cfg)
    model.train()
    cfg = LossConfig(scale="static")
    store, fill = None, None
    if args.mode in CACHED:  # memory only: the on-disk store would make a second run of the bench free
        split = trained_blocks(model.config.num_hidden_layers, train_cfg).start
        FrozenStore(model, split, args.base, None).fill(model, examples[:1], pieces)  # warm-up, untimed
        store = FrozenStore(model, split, args.base, None)
        t0, c0 = time.perf_counter(), time.process_time()
        store.fill(model, examples, pieces)
        fill = ((time.perf_counter() - t0) / len(examples), (time.process_time() - c0) / len(examples))
    mode = args.mode.removesuffix("_cached")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step(ex):
        if mode == "sft_hf":  # the textbook SFT step: full logits over every position
            ids = torch.tensor([ex.prompt + ex.variants[0]])
            labels = ids.clone()
            labels[0, : len(ex.prompt)] = -100
            loss = model(input_ids=ids, labels=labels).loss
        else:
            batch = collate([ex], packed=mode == "packed", pad_id=tok.pad_token_id, contrastive=mode != "sft",
                            frozen=store)
            loss = compute_objective(model, batch, None if mode == "sft" else cfg)["loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)

    step(examples[0])  # warm-up
    walls, cpus = [], []
    for ex in examples:
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            step(ex)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tokens = {
        "sft_hf": sum(len(e.prompt) + len(e.variants[0]) for e in examples),
        "sft": sum(len(e.prompt) + len(e.variants[0]) for e in examples),
        "naive": sum(len(e.variants) * len(e.prompt) + sum(map(len, e.variants)) for e in examples),
        "packed": sum(len(e.prompt) + sum(map(len, e.variants)) for e in examples),
    }[mode]
    return {"mode": args.mode, "wall_s": sum(walls) / len(walls), "cpu_s": sum(cpus) / len(cpus),
            "peak_rss_mib": peak / 1024, "step_rss_mib": (peak - rss0) / 1024,
            "tokens_per_post": tokens / len(examples), "fill": fill}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="models/base")
    p.add_argument("--train", default="data/raw/train.parquet")
    p.add_argument("--posts", type=int, default=2, help="posts timed (each one step)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--variants", type=int, default=8)
    p.add_argument("--max-prompt-tokens", type=int, default=256)
    p.add_argument("--max-summary-tokens", type=int, default=84)
    p.add_argument("--trainable", default="full", choices=["full", "top_layers", "lora"])
    p.add_argument("--top-layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--mode", choices=MODES + CACHED, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    results = {}
    for mode in MODES + (CACHED if args.trainable == "top_layers" else ()):
        cmd = [sys.executable, "-m", "bench.train_step", "--mode", mode] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
        r = results[mode]
        print(f"{mode:7s} step {r['wall_s']:7.2f} s wall  {r['cpu_s']:7.2f} s cpu  "
              f"{r['tokens_per_post']:6.0f} tokens/post  peak RSS {r['peak_rss_mib']:7.0f} MiB "
              f"(+{r['step_rss_mib']:.0f} MiB over the loaded model)"
              + (f"  fill {r['fill'][0]:.2f} s wall {r['fill'][1]:.2f} s cpu /post" if r["fill"] else ""), flush=True)
    print(f"trainable={args.trainable}  variants={args.variants}  posts={args.posts}")
    # CPU time is the steadier number on a shared machine (with --threads 1 it is the idle wall time).
    for clock in ("wall_s", "cpu_s"):
        s, h, n, k = (results[m][clock] for m in ("sft", "sft_hf", "naive", "packed"))
        print(f"[{clock[:-2]}] packed / sft = {k / s:.2f}x (target <= 1.5)  packed / sft_hf = {k / h:.2f}x  "
              f"naive / sft = {n / s:.2f}x  naive / packed = {n / k:.2f}x (target >= 4)")
        if "packed_cached" in results:
            sc, kc = results["sft_cached"][clock], results["packed_cached"][clock]
            print(f"[{clock[:-2]}] cached states: sft {sc:.2f} s vs {s:.2f} s ({s / sc:.2f}x faster), "
                  f"packed {kc:.2f} s vs {k:.2f} s ({k / kc:.2f}x faster)")

if __name__ == "__main__":
    main()

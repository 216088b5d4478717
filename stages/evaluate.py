"""DVC stage `evaluate@<method>`: one method's summaries of the eval posts, scored, and its paired
likelihood preferences on every eval post with a group.

Writes data/eval/<method>/{generations,scores,preferences}.parquet and metrics/evaluate/<method>.json.

Generation and preference scoring split the posts across processes when started by a launcher,
e.g. `torchrun --nproc_per_node 2 -m stages.evaluate ...` (or `accelerate launch`); the output is
the same as one process's, and only process 0 scores the generations and writes.
"""

import logging
import time

from aligntax import cli

log = logging.getLogger("stages.evaluate")


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, help="method name (names the output files)")
    p.add_argument("--model", default=None, help="the method's model folder (default: its folder under `methods:`)")
    p.add_argument("--eval", default="data/raw/eval.parquet", help="eval posts (the first evaluate.n_posts are summarized)")
    p.add_argument("--groups", default=None,
                   help="groups of the eval posts (data/augment/eval/groups.parquet); omit to skip preferences")
    p.add_argument("--scorer-dir", default="models/scorers", help="fitted offline scorer heads (fit-scorers)")
    p.add_argument("--generations", required=True, help="output: one generated summary per post (parquet)")
    p.add_argument("--scores", required=True, help="output: toxicity, faithfulness and patterns per summary (parquet)")
    p.add_argument("--preferences", default=None, help="per-pair margins (needs --groups)")
    p.add_argument("--metrics", required=True, help="output: the method's metrics JSON")
    args = p.parse_args()
    if (args.groups is None) != (args.preferences is None):
        raise ValueError("--groups and --preferences go together: give both to score preferences, or neither")

    # Heavy imports after parsing, so --help stays fast.
    from aligntax import distributed
    from aligntax.config import load_section, load_seed, read_params
    from aligntax.evaluate.preference import PREFERENCES
    from aligntax.evaluate.run import (
        EvaluateConfig,
        check_method,
        generate_method,
        load_decoding,
        load_scorers,
        preference_method,
        score_method,
        select_posts,
    )
    from aligntax.io import read_parquet, write_json, write_parquet
    from aligntax.methods import load_methods
    from aligntax.models import ModelConfig, load_tokenizer
    from aligntax.schema import GENERATIONS, GROUPS, RAW, SCORES

    method = check_method(args.method)
    params = read_params(args.params)
    if args.model is None:
        folders = load_methods(params)
        if method not in folders:
            raise ValueError(f"params.yaml: no method '{method}' under 'methods' (have: {', '.join(folders)}); "
                             "add it there or pass --model")
        args.model = folders[method]
    cfg = load_section(params, "evaluate", EvaluateConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    seed = load_seed(params)
    load_tokenizer(args.model)  # fail on a missing model before the scorers load
    all_evals = read_parquet(args.eval, RAW)
    groups = read_parquet(args.groups, GROUPS) if args.groups else None
    evals, rows = select_posts(all_evals, cfg.n_posts)

    main_process = distributed.is_main()
    start = time.perf_counter()
    scorers = load_scorers(params, cfg, args.scorer_dir) if main_process else None
    loaded = time.perf_counter()
    decoding = load_decoding(method, args.model, params)
    gens = generate_method(method, args.model, evals, cfg, template, params, decoding)
    generated = time.perf_counter()
    scores, metrics = score_method(gens, scorers, cfg, seed) if main_process else (None, {})
    metrics["prompts_truncated"] = int(gens["prompt_truncated"].sum())
    scored = time.perf_counter()
    if groups is not None:
        pairs, metrics["preference"] = preference_method(method, decoding, all_evals, groups, cfg, template)
    if not main_process:
        return
    log.info("%s: %d posts; scorers loaded in %.1f s, generation %.1f s, scoring %.1f s, preferences %.1f s",
             method, len(evals), loaded - start, generated - loaded, scored - generated, time.perf_counter() - scored)

    write_parquet(gens, args.generations, GENERATIONS)
    write_parquet(scores, args.scores, SCORES)
    if groups is not None:
        write_parquet(pairs, args.preferences, PREFERENCES)
    write_json({"method": method, "model": args.model, "rows": rows, **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

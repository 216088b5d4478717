"""DVC stage `evaluate@<method>`: one method's summaries of the eval posts, scored, its paired
likelihood preferences on every eval post with a group, and every scored variant's likelihood.

Writes data/eval/<method>/{generations,scores,preferences}.parquet (and, with --likelihoods,
the per-variant likelihoods) and metrics/evaluate/<method>.json, whose "seconds" are: imports
(the heavy ones, after argument parsing), load (scorers and model), generate (of which
generate_prefill: the prompts' KV caches, the frozen bottom's from the shared store), score,
preferences. "shared_bottom" says which blocks came from the store (aligntax/evaluate/bottom.py).

Generation and preference scoring split the posts across processes when started by a launcher,
e.g. `torchrun --nproc_per_node 2 -m stages.evaluate ...` (or `accelerate launch`); the output is
the same as one process's, and only process 0 scores the generations and writes.
"""

import logging

from aligntax import cli
from aligntax.timing import Timer

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
    p.add_argument("--likelihoods", default=None,
                   help="output: summed log-prob and token count of every scored variant (parquet; needs --groups)")
    p.add_argument("--metrics", required=True, help="output: the method's metrics JSON")
    args = p.parse_args()
    if (args.groups is None) != (args.preferences is None):
        raise ValueError("--groups and --preferences go together: give both to score preferences, or neither")
    if args.likelihoods is not None and args.groups is None:
        raise ValueError("--likelihoods needs --groups and --preferences (the variants scored are the groups')")

    timer = Timer()
    with timer.phase("imports"):  # heavy imports after parsing, so --help stays fast
        from aligntax import distributed
        from aligntax.config import load_section, load_seed, read_params
        from aligntax.evaluate import run
        from aligntax.evaluate.preference import LIKELIHOODS, PREFERENCES, likelihood_means
        from aligntax.io import read_parquet, write_json, write_parquet
        from aligntax.methods import load_methods
        from aligntax.models import ModelConfig, load_tokenizer
        from aligntax.ner import NerConfig
        from aligntax.schema import GENERATIONS, GROUPS, RAW, SCORES
        from aligntax.scoring import ScoringConfig

    method = run.check_method(args.method)
    params = read_params(args.params)
    if args.model is None:
        folders = load_methods(params)
        if method not in folders:
            raise ValueError(f"params.yaml: no method '{method}' under 'methods' (have: {', '.join(folders)}); "
                             "add it there or pass --model")
        args.model = folders[method]
    cfg = load_section(params, "evaluate", run.EvaluateConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    seed = load_seed(params)
    decoding = run.method_decoding(method, params)
    scoring, ner = load_section(params, "scoring", ScoringConfig), load_section(params, "ner", NerConfig)
    main_process = distributed.is_main()
    load_tokenizer(args.model)  # fail on a missing model before the scorers load
    all_evals = read_parquet(args.eval, RAW)
    groups = read_parquet(args.groups, GROUPS) if args.groups else None
    evals, rows = run.select_posts(all_evals, cfg.n_posts)

    with timer.phase("load"):
        scorers = run.load_scorers(scoring, ner, cfg.patterns.embedder, args.scorer_dir) if main_process else None
        m = run.load_method(method, args.model, decoding)
        prompts = run.encode_prompts(m.tokenizer, template, decoding.prefix, all_evals, cfg.max_prompt_tokens)
    with timer.phase("generate"):
        gens = run.generate_method(m, evals, prompts, cfg.generate, timer)
    with timer.phase("score"):
        scores, metrics = run.score_method(gens, scorers, cfg, seed) if main_process else (None, {})
    metrics["prompts_truncated"] = int(gens["prompt_truncated"].sum())
    if groups is not None:
        with timer.phase("preferences"):
            pairs, variants, metrics["preference"] = run.preference_method(m, all_evals, groups, prompts, cfg.preference)
        metrics["likelihood"] = likelihood_means(variants)
    if not main_process:
        return
    metrics["shared_bottom"] = run.bottom_metrics(m)
    metrics["seconds"] = timer.seconds()
    log.info("%s: %d posts; seconds %s", method, len(evals), metrics["seconds"])

    write_parquet(gens, args.generations, GENERATIONS)
    write_parquet(scores, args.scores, SCORES)
    if groups is not None:
        write_parquet(pairs, args.preferences, PREFERENCES)
        if args.likelihoods:
            write_parquet(variants, args.likelihoods, LIKELIHOODS)
    write_json({"method": method, "model": args.model, "rows": rows, **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

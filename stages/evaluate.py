"""DVC stage `evaluate@<method>`: one method's summaries of the eval posts, scored.

Writes data/eval/<method>/{generations,scores}.parquet and metrics/evaluate/<method>.json.
"""

import logging
import time

from aligntax import cli
from aligntax.config import load_section, load_seed, read_params
from aligntax.evaluate.run import EvaluateConfig, check_method, generate_method, load_scorers, score_method, select_posts
from aligntax.io import read_parquet, write_json, write_parquet
from aligntax.models import ModelConfig, load_tokenizer
from aligntax.schema import GENERATIONS, RAW, SCORES

log = logging.getLogger("stages.evaluate")


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--method", required=True, help="method name (names the output files)")
    p.add_argument("--model", required=True, help="the method's model folder, e.g. models/sft")
    p.add_argument("--eval", default="data/raw/eval.parquet")
    p.add_argument("--scorer-dir", default="models/scorers")
    p.add_argument("--generations", required=True)
    p.add_argument("--scores", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    method = check_method(args.method)
    params = read_params(args.params)
    cfg = load_section(params, "evaluate", EvaluateConfig)
    template = load_section(params, "model", ModelConfig).prompt_template
    seed = load_seed(params)
    load_tokenizer(args.model)  # fail on a missing model before the scorers load
    evals, rows = select_posts(read_parquet(args.eval, RAW), cfg.n_posts)

    start = time.perf_counter()
    scorers = load_scorers(params, cfg, args.scorer_dir)
    loaded = time.perf_counter()
    gens = generate_method(method, args.model, evals, cfg, template, params)
    generated = time.perf_counter()
    scores, metrics = score_method(gens, scorers, cfg, seed)
    log.info("%s: %d posts; scorers loaded in %.1f s, generation %.1f s, scoring %.1f s",
             method, len(evals), loaded - start, generated - loaded, time.perf_counter() - generated)

    write_parquet(gens, args.generations, GENERATIONS)
    write_parquet(scores, args.scores, SCORES)
    write_json({"method": method, "model": args.model, "rows": rows, **metrics}, args.metrics)


if __name__ == "__main__":
    cli.run(main)

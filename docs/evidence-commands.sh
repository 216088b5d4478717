#!/usr/bin/env bash
# The evidence runs behind reports/evidence.md. Run from the repository root of a checkout whose default
# pipeline is done (`make repro`, or a clone that shares that checkout's DVC cache and ran `dvc checkout`):
# only the stages the overrides touch run again. Each run's outputs are copied to $OUT/<name>/.
set -euo pipefail
OUT=${OUT:-reports/evidence}
save() {  # save <name> <start epoch seconds>
  mkdir -p "$OUT/$1/evaluate"
  printf '{"date": "%s", "commit": "%s", "seconds": %d, "omp_num_threads": "%s"}\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
    "$(git rev-parse --short HEAD)" "$(( $(date +%s) - $2 ))" "${OMP_NUM_THREADS:-unset}" > "$OUT/$1/run.json"
  cp reports/comparison.md reports/tradeoff.png metrics/compare.json params.yaml metrics/train_contrastive.json "$OUT/$1/"
  cp metrics/evaluate/*.json "$OUT/$1/evaluate/"
}
# 1. every eval post (99 instead of 24) for every method; the default training budget, loss.scale none
start=$(date +%s)
dvc exp run -n ev-none -S evaluate.n_posts=0
save ev-none "$start"
# 2. the same with dynamic toxicity scaling; gain 4 so that dynamic differs from a constant weight
#    (docs/evidence.md: at gain 1 dynamic and static are the same experiment)
start=$(date +%s)
dvc exp run -n ev-dynamic -S evaluate.n_posts=0 -S loss.scale=dynamic -S loss.dynamic_gain=4.0
save ev-dynamic "$start"

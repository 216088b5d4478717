#!/usr/bin/env bash
# The evidence runs behind reports/evidence.md (docs/evidence.md: why these settings). Run from the
# repository root, venv active, in a checkout whose default pipeline is done (`make repro`): the
# augmentation is the default's (run cache), so only training, evaluation and compare run again.
# Each run's outputs are copied to $OUT/<name>/ (a run already there is skipped, so an interrupted
# script continues where it stopped); the workspace is left at the last run's outputs
# (`git checkout -- . && dvc checkout` returns to the committed default).
set -euo pipefail
OUT=${OUT:-reports/evidence}
save() {  # save <name> <start epoch seconds>; run.json last: it marks a complete run
  mkdir -p "$OUT/$1/evaluate"
  cp reports/comparison.md reports/tradeoff.png metrics/compare.json params.yaml "$OUT/$1/"
  cp metrics/evaluate/*.json "$OUT/$1/evaluate/"
  for f in metrics/train/*.json; do cp "$f" "$OUT/$1/evaluate/train_$(basename "$f")"; done
  cp metrics/train/contrastive.json "$OUT/$1/train_contrastive.json"
  printf '{"date": "%s", "commit": "%s", "seconds": %d, "omp_num_threads": "%s"}\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
    "$(git rev-parse --short HEAD)" "$(( $(date +%s) - $2 ))" "${OMP_NUM_THREADS:-unset}" > "$OUT/$1/run.json"
}
# Every eval post (99, not 24); 8 trained blocks for 2 epochs (the default: 2 blocks, 1 epoch); dynamic
# scaling at gain 4 (at gain 1 dynamic and static are the same experiment; static_weight = the mean
# dynamic w at gain 4 on the default groups, `python bench/group_yield.py --gains 1,4`).
EVIDENCE=(-S evaluate.n_posts=0 -S train.top_layers=8 -S train.epochs=2 -S loss.dynamic_gain=4.0
          -S loss.static_weight=3.1)
# The methods evaluated: sft, contrastive and the baselines the issue names (cda, inlp, sentence_debias,
# self_debias and the untrained base stay in the default run: 4 x 2.7 min more at 99 posts)
BASELINES=(-S '~methods.base' -S '~methods.cda' -S '~methods.inlp' -S '~methods.sentence_debias'
           -S '~methods.self_debias')
# Seeds 1 and 2 compare sft and contrastive only
PAIR=("${BASELINES[@]}" -S '~methods.dpo' -S '~methods.unlikelihood' -S '~methods.dropout' -S '~methods.instructive')

run() {  # run <name> <dvc exp run arguments...>; a run already saved under $OUT is skipped
  local name=$1 start
  shift
  if [[ -f "$OUT/$name/run.json" ]]; then echo "skip $name: $OUT/$name/run.json exists"; return; fi
  git checkout -- params.yaml   # -S applies to the workspace's params, which hold the previous run's
  start=$(date +%s)
  dvc exp run -n "$name" "$@" compare
  save "$name" "$start"
}
# seed 0: every listed method, contrastive with dynamic scaling (the paper's method)
run ev-s0-dynamic "${EVIDENCE[@]}" "${BASELINES[@]}" -S loss.scale=dynamic
# seed 0, the ablation: only loss.scale changes; the run cache restores every other stage
run ev-s0-none "${EVIDENCE[@]}" "${BASELINES[@]}" -S loss.scale=none
# training seeds 1 and 2 (train.seed: the augmented data stays the same), sft and contrastive dynamic
for s in 1 2; do
  run "ev-s$s-dynamic" "${EVIDENCE[@]}" "${PAIR[@]}" -S loss.scale=dynamic -S train.seed=$s
done

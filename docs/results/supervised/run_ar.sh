#!/bin/bash
# Associative-recall curriculum, lstm vs dam vs sam with the same wall-clock budget.
# Usage: docs/results/supervised/run_ar.sh [seconds per core] [one-after-another | together]
#   default 600 s, one after the other; the full run: 3600. "together" starts the three at once
#   (one thread each, sharing the machine's cores: the same conditions for all three).
set -e
BUDGET=${1:-600}
MODE=${2:-one-after-another}
case "$MODE" in one-after-another|together) ;; *) echo "run_ar.sh: unknown mode '$MODE'; use one-after-another or together" >&2; exit 2;; esac
ROOT=runs/results
[ "$MODE" = together ] && ROOT=runs/results-ar-together
COMMON="task=associative_recall max_time_s=$BUDGET max_batches=null batch_size=16 optimizer.name=adam optimizer.learning_rate=1e-3 seed=0 threads=1 progress=false run_root=$ROOT"
RUNS=("name=ar-lstm core=lstm core.hidden_size=100"
      "name=ar-dam core=dam core.controller_size=100 core.heads=4 core.slots=64"
      "name=ar-sam core=sam core.controller_size=100 core.heads=4 core.top_k=4 core.slots=1024")
for run in "${RUNS[@]}"; do
  if [ "$MODE" = together ]; then memrl supervised $COMMON $run & else memrl supervised $COMMON $run; fi
done
wait
# Generalisation of each trained model to longer sequences (the same evaluation data for all three):
for run in $ROOT/*-ar-lstm $ROOT/*-ar-dam $ROOT/*-ar-sam; do
  memrl eval checkpoint=$run eval.levels=[1,2,4,8,16,32,64] eval.batches=8 eval.batch_size=16 threads=1 eval.out=$run/generalisation
done
python -m training.supervised.report curriculum $ROOT/*-ar-lstm $ROOT/*-ar-dam $ROOT/*-ar-sam
# runs/ is not committed: keep each run's config, metrics and evaluations beside the results.
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md generalisation.json generalisation.md

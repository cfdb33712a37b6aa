#!/bin/bash
# Associative-recall curriculum for the model-zoo cores (issue 25) beside lstm, at one budget in batches
# (not seconds: batches do not depend on the machine's load, so the runs compare per batch with the
# lstm, dam and sam runs of supervised.md's "Run 2", which report batches to each level).
# Usage: docs/results/supervised/run_ar_zoo.sh [batches per core] [processes at once] [seed]
#   Settings as run_ar.sh (Adam 1e-3, batch 16, gradient clip 10, one thread per run), seed 0 unless
#   given, each core at width 100 where it has one (the thesis' controller size).
set -e
BATCHES=${1:-20000}
PARALLEL=${2:-2}
SEED=${3:-0}
ROOT=runs/results-ar-zoo-seed$SEED
COMMON="task=associative_recall max_time_s=null max_batches=$BATCHES batch_size=16 optimizer.name=adam optimizer.learning_rate=1e-3 seed=$SEED threads=1 progress=false run_root=$ROOT"
RUNS=("name=ar-zoo-lstm-seed$SEED core=lstm core.hidden_size=100"
      "name=ar-zoo-gru-seed$SEED core=gru core.hidden_size=100"
      "name=ar-zoo-ffm-seed$SEED core=ffm core.hidden_size=100"
      "name=ar-zoo-lru-seed$SEED core=lru core.hidden_size=100"
      "name=ar-zoo-linear_attention-seed$SEED core=linear_attention core.hidden_size=100"
      "name=ar-zoo-mamba-seed$SEED core=mamba core.hidden_size=100")
printf '%s\n' "${RUNS[@]}" | xargs -P "$PARALLEL" -I{} sh -c "memrl supervised $COMMON {}"
python -m training.supervised.report curriculum $ROOT/*-ar-zoo-*
# runs/ is not committed: keep each run's config and metrics beside the results.
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md

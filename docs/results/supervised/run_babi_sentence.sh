#!/bin/bash
# bAbI 10k with task.encoding=sentence (one statement or question per step): single-task qa1 with
# sam, hopfield and transformer_xl, then qa2 with transformer_xl. Run side by side (one thread each).
# Usage: docs/results/supervised/run_babi_sentence.sh [seconds per run]
set -e
SECONDS_PER_RUN=${1:-900}
DATA=/work/shared/data/babi/tasks_1-20_v1-2
ROOT=runs/results
BABI="task=babi task.path=$DATA/en-10k task.fallback_path=$DATA/en task.encoding=sentence optimizer.name=adam optimizer.learning_rate=1e-3 seed=0 threads=1 progress=false run_root=$ROOT max_batches=null eval.batch_size=128 batch_size=32 validation.interval_batches=200 validation.batch_size=128"
for core in sam hopfield transformer_xl; do
  memrl supervised $BABI name=babi-qa1-$core-sentence task.tasks=[1] core=$core max_time_s=$SECONDS_PER_RUN &
done
memrl supervised $BABI name=babi-qa2-transformer_xl-sentence task.tasks=[2] core=transformer_xl max_time_s=$SECONDS_PER_RUN &
wait
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md

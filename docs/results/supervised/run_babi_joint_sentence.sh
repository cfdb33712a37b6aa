#!/bin/bash
# bAbI 10k joint training on all 20 tasks with task.encoding=sentence: transformer_xl, lstm and sam
# side by side (one thread each, started together), the same wall-clock budget each.
# Usage: docs/results/supervised/run_babi_joint_sentence.sh [seconds per run]
set -e
BUDGET=${1:-2700}
DATA=/work/shared/data/babi/tasks_1-20_v1-2
ROOT=runs/results-joint-sentence
BABI="task=babi task.path=$DATA/en-10k task.fallback_path=$DATA/en task.encoding=sentence optimizer.name=adam optimizer.learning_rate=1e-3 seed=0 threads=1 progress=false run_root=$ROOT max_batches=null max_time_s=$BUDGET eval.batch_size=128 batch_size=64 validation.interval_batches=200 validation.batch_size=128"
memrl supervised $BABI name=babi-joint-transformer_xl-sentence core=transformer_xl &
memrl supervised $BABI name=babi-joint-lstm-sentence core=lstm core.hidden_size=256 &
memrl supervised $BABI name=babi-joint-sam-sentence core=sam core.slots=256 &
wait
python -m training.supervised.report babi transformer_xl=$(ls -d $ROOT/*-joint-transformer_xl-sentence | tail -1)/eval.json \
  lstm=$(ls -d $ROOT/*-joint-lstm-sentence | tail -1)/eval.json sam=$(ls -d $ROOT/*-joint-sam-sentence | tail -1)/eval.json
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md

#!/bin/bash
# bAbI 10k: joint training on all 20 tasks (lstm, then sam), then single-task qa1 and qa2 with sam.
# The 10k copy in /work/shared/data has no qa3 training file: task.fallback_path takes qa3's from the 1k set.
# Usage: docs/results/supervised/run_babi.sh [seconds per joint run] [seconds per single-task run]
set -e
JOINT=${1:-1500}
SINGLE=${2:-720}
DATA=/work/shared/data/babi/tasks_1-20_v1-2
BABI="task=babi task.path=$DATA/en-10k task.fallback_path=$DATA/en optimizer.name=adam optimizer.learning_rate=1e-3 seed=0 threads=1 progress=false run_root=runs/results max_batches=null eval.batch_size=128"
memrl supervised $BABI name=babi-joint-lstm core=lstm core.hidden_size=256 batch_size=128 max_time_s=$JOINT validation.interval_batches=200 validation.batch_size=128
memrl supervised $BABI name=babi-joint-sam core=sam core.slots=256 batch_size=128 max_time_s=$JOINT validation.interval_batches=100 validation.batch_size=128
memrl supervised $BABI name=babi-qa1-sam task.tasks=[1] core=sam batch_size=32 max_time_s=$SINGLE validation.interval_batches=50 validation.batch_size=128
memrl supervised $BABI name=babi-qa2-sam task.tasks=[2] core=sam batch_size=32 max_time_s=$SINGLE validation.interval_batches=50 validation.batch_size=128
# Each run writes its per-task test table to <run>/eval.md and eval.json; side by side:
python -m training.supervised.report babi lstm=$(ls -d runs/results/*-babi-joint-lstm | tail -1)/eval.json sam=$(ls -d runs/results/*-babi-joint-sam | tail -1)/eval.json
# runs/ is not committed: keep each run's config, metrics and test table beside the results.
docs/results/keep_runs.sh runs/results docs/results/supervised config.yaml metrics.csv eval.json eval.md

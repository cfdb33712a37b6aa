#!/bin/bash
# bAbI 10k qa2 (two supporting facts) with task.encoding=sentence and a 4-layer transformer_xl
# (dropout 0.2, the best setting of run_babi_sentence.sh: 7.8% in 40 minutes, training accuracy ~100%),
# now with the regularisation and selection every bAbI paper uses: AdamW weight decay, the learning
# rate halved on a validation plateau, and the test table from the best-validation weights.
# Two runs side by side, one thread each, on the 2-core CPU.
# Usage: docs/results/supervised/run_babi_qa2.sh <stage> [seconds per run]
#   stage 1: qa2 alone vs qa1+qa2 joint (more stories of people moving).
set -e
STAGE=${1:?usage: run_babi_qa2.sh <stage 1> [seconds per run]}
BUDGET=${2:-2700}
DATA=/work/shared/data/babi/tasks_1-20_v1-2
ROOT=runs/results-qa2
BABI="task=babi task.path=$DATA/en-10k task.fallback_path=$DATA/en task.encoding=sentence core=transformer_xl core.n_layers=4 core.dropout=0.2 optimizer.name=adam optimizer.learning_rate=1e-3 optimizer.weight_decay=0.1 optimizer.plateau.patience=10 eval.weights=best seed=0 threads=1 progress=false run_root=$ROOT max_batches=null max_time_s=$BUDGET batch_size=32 validation.interval_batches=200 validation.batch_size=128 eval.batch_size=128"
case $STAGE in
  1)
    memrl supervised $BABI name=qa2-txl4-wd0.1-plateau task.tasks=[2] &
    memrl supervised $BABI name=qa1qa2-txl4-wd0.1-plateau task.tasks=[1,2] &
    ;;
  *) echo "run_babi_qa2.sh: unknown stage $STAGE; use 1" >&2; exit 2 ;;
esac
wait
docs/results/keep_runs.sh $ROOT docs/results/supervised config.yaml metrics.csv eval.json eval.md

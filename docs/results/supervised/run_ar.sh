#!/bin/bash
# Associative-recall curriculum, lstm vs dam vs sam, one after the other with the same wall-clock budget.
# Usage: docs/results/supervised/run_ar.sh [seconds per core]   (default 600; the full run: 3600)
set -e
BUDGET=${1:-600}
COMMON="task=associative_recall max_time_s=$BUDGET max_batches=null batch_size=16 optimizer.name=adam optimizer.learning_rate=1e-3 seed=0 threads=1 progress=false run_root=runs/results"
memrl supervised $COMMON name=ar-lstm core=lstm core.hidden_size=100
memrl supervised $COMMON name=ar-dam core=dam core.controller_size=100 core.heads=4 core.slots=64
memrl supervised $COMMON name=ar-sam core=sam core.controller_size=100 core.heads=4 core.top_k=4 core.slots=1024
# Generalisation of each trained model to longer sequences (the same evaluation data for all three):
for run in runs/results/*-ar-lstm runs/results/*-ar-dam runs/results/*-ar-sam; do
  memrl eval checkpoint=$run eval.levels=[1,2,4,8,16,32,64] eval.batches=8 eval.batch_size=16 threads=1 eval.out=$run/generalisation
done
python -m training.supervised.report curriculum runs/results/*-ar-lstm runs/results/*-ar-dam runs/results/*-ar-sam

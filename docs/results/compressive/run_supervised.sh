#!/usr/bin/env bash
# Byte-level language modelling (War and Peace) and speech (FSDD, 8-bit mu-law):
# Compressive Transformer vs TransformerXL vs LSTM, ~178k parameters each, the same
# wall-clock training budget each, run one after another (never two at once).
# Usage: docs/results/compressive/run_supervised.sh [seconds per model, default 480]
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUDGET=${1:-480}
ROOT=runs/compressive
COMMON=(model.embedding_size=64 optimizer.name=adam optimizer.learning_rate=1e-3 batch_size=16
        max_batches=null max_time_s=$BUDGET validation.interval_batches=250 progress=false tensorboard=false)
# Equal parameters: CT d=64, 2 layers, mlp 256, n_m=32 + n_cm=32 (rate 4, conv): 178,112.
# TXL: n_m=64 (the same attention cost), mlp 384 to make up the compression network: 178,240.
# LSTM: 146 units: 177,824.
MODELS=("compressive_transformer" "transformer_xl core.mlp_size=384" "lstm core.hidden_size=146")
for model in "${MODELS[@]}"; do
  set -- $model
  .venv/bin/memrl supervised task=language task.path=/work/shared/data/war-and-peace/warandpeace.txt \
    core=$1 "${@:2}" "${COMMON[@]}" eval.batch_size=64 name=lm-$1 run_root=$ROOT
done
for model in "${MODELS[@]}"; do
  set -- $model
  .venv/bin/memrl supervised task=speech task.path=/work/shared/data/fsdd/recordings \
    core=$1 "${@:2}" "${COMMON[@]}" eval.batch_size=128 name=speech-$1 run_root=$ROOT
done

#!/usr/bin/env bash
# IMPALA on select_nonmatching_object (the quickstart setting): the Compressive Transformer at
# compression rates 1 and 4 (thesis 6.5.8), and the LSTM at the same frame budget, one after another.
# actors.num_actors=0 steps the actor in the learner's process (synchronous, no policy lag): on the
# shared 2-core machine the Ray actor processes got ~20 fps, the in-process actor ~300 fps.
# Usage: docs/results/compressive/run_rl.sh [frames per run, default 200000]
set -euo pipefail
cd "$(dirname "$0")/../../.."
FRAMES=${1:-200000}
ROOT=runs/compressive-rl
for rate in 1 4; do
  .venv/bin/memrl train core=compressive_transformer experiment=quickstart core.compression_rate=$rate \
    total_frames=$FRAMES actors.num_actors=0 tensorboard=false name=ct-rate$rate run_root=$ROOT
done
.venv/bin/memrl train core=lstm experiment=quickstart total_frames=$FRAMES actors.num_actors=0 tensorboard=false name=lstm run_root=$ROOT
.venv/bin/memrl plot "run_dir=[$(ls -d $ROOT/* | paste -sd, -)]" out=docs/results/compressive/rl_returns.png \
  title="select_nonmatching_object (quickstart), $FRAMES frames"
.venv/bin/memrl plot "run_dir=[$(ls -d $ROOT/* | paste -sd, -)]" metric=mean_success \
  out=docs/results/compressive/rl_success.png title="select_nonmatching_object (quickstart), $FRAMES frames"

#!/usr/bin/env bash
# Issue 29's new defaults (decorrelated envs, PopArt, the env config's unroll length) on POPGym, one seed each.
# Five runs side by side, in-process actors (actors.num_actors=0: one process each, deterministic), each stopped
# at 2M frames or after LIMIT_S seconds (SIGTERM saves the checkpoint and the last metrics row).
# Usage (from the repository root): docs/results/defaults/run.sh [LIMIT_S]; run folders go to docs/results/defaults/.
set -u
LIMIT_S=${1:-1500}
OUT=docs/results/defaults
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The loss as it ran (train.yaml's defaults then; they have since moved to advantage_normalisation=rms, entropy_cost 0.025).
common="actors.num_actors=0 total_frames=2000000 seed=0 tensorboard=false checkpoint.keep_last=0 checkpoint.keep_best=false run_root=$OUT
        learner.loss.advantage_normalisation=sigma learner.loss.entropy_cost=0.01"
run() {  # name, overrides...
  local name=$1; shift
  nice timeout -s TERM "$LIMIT_S" python -m training.cli train name="$name" $common "$@" > "$OUT/$name.log" 2>&1 &
}
run lstm-count_recall_easy                core=lstm        env=count_recall_easy
run lstm-count_recall_easy-no_popart      core=lstm        env=count_recall_easy learner.loss.value_normalisation=none
run feedforward-count_recall_easy         core=feedforward env=count_recall_easy
run lstm-repeat_previous_easy             core=lstm        env=repeat_previous_easy
run feedforward-repeat_previous_easy      core=feedforward env=repeat_previous_easy
wait

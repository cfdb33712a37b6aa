#!/bin/bash
# sdnc and dnc trained by IMPALA with Ray actors (the default runtime: an embedded local cluster, 2 actors)
# on the passive T-maze with a corridor of 5, then evaluated on 100 episodes (sdnc.md, "Use with IMPALA").
# Usage: docs/results/sdnc_impala/run.sh   (from the repository root; about 2 minutes per core on 2 CPU cores)
set -e
ROOT=runs/sdnc-impala
for core in sdnc dnc; do
  memrl train core=$core env=tmaze env.corridor_length=5 total_frames=400000 run_root=$ROOT name=$core-tmaze5-400k
done
for run in $ROOT/*/; do memrl eval checkpoint=$run; done
docs/results/keep_runs.sh $ROOT docs/results/sdnc_impala config.yaml metrics.csv eval.csv

#!/usr/bin/env bash
# Two in-process trials packed by `memrl sweep` (one CPU each, both at once) against the same two runs
# one after another, on the same machine in the same session. Writes timing.csv beside this script
# (the committed results were renamed timing_<FRAMES>.csv).
# Usage (repository root, .venv set up): docs/results/sweep/run_packing.sh [FRAMES]
set -euo pipefail
FRAMES=${1:-200000}
OUT=docs/results/sweep
ROOT=$(mktemp -d)
COMMON="env=tmaze env.corridor_length=5 core=lstm actors.num_actors=0 total_frames=$FRAMES tensorboard=false"
stamp() { date +%s.%N; }
calc() { .venv/bin/python -c "print(round($1, 2))"; }
start=$(stamp)
for seed in 0 1; do .venv/bin/memrl train $COMMON seed=$seed run_root=$ROOT/sequential > /dev/null; done
sequential=$(calc "$(stamp) - $start")
start=$(stamp)
.venv/bin/memrl sweep $COMMON "seed=0,1" sweep.max_concurrent=2 sweep.root=$ROOT/packed > /dev/null
packed=$(calc "$(stamp) - $start")
echo "layout,runs,frames_each,wall_s,frames_per_s" > $OUT/timing.csv
echo "sequential,2,$FRAMES,$sequential,$(calc "2 * $FRAMES / $sequential")" >> $OUT/timing.csv
echo "sweep_packed,2,$FRAMES,$packed,$(calc "2 * $FRAMES / $packed")" >> $OUT/timing.csv
cat $OUT/timing.csv

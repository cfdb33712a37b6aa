#!/bin/bash
# memrl/memory_maze 9x9: feedforward, lstm and sam trained side by side (one process each, in-process
# actor, one thread), then evaluated on the same 64 seeded episodes, plotted and tabulated.
# 2026-11-30 (envs.md): started with total_frames=30000000 and stopped with Ctrl-C (SIGINT saves the
# checkpoint) once each run had passed 7,147,520 frames; FRAMES=7147520 asks for that length directly.
# Usage: docs/results/envs/run_memory_maze.sh   (FRAMES=... to change the length)
set -e
ROOT=runs/memory_maze_9x9_long
for core in lstm feedforward sam; do
  OMP_NUM_THREADS=1 memrl train core=$core env=memory_maze name=$core-memory_maze run_root=$ROOT \
    total_frames=${FRAMES:-7147520} actors.num_actors=0 actors.envs_per_actor=32 learner.batch_unrolls=1 \
    seed=0 log.interval_s=30 learner.loss.discount=0.9 learner.loss.trace_lambda=0.5 &
done
wait
for run in $ROOT/*-memory_maze; do memrl eval checkpoint=$run episodes=64 envs=16; done
memrl plot run_dir=$ROOT out=docs/results/envs/memory_maze_9x9_returns.png \
  "title='memrl/memory_maze 9x9: return per 500-step episode'"
python docs/results/envs/memory_maze_table.py $ROOT/*-feedforward-memory_maze $ROOT/*-lstm-memory_maze $ROOT/*-sam-memory_maze
memrl eval checkpoint=$(ls -d $ROOT/*-lstm-memory_maze) episodes=8 envs=8 record=true record_max_steps=150 \
  record_path=docs/results/envs/memory_maze_9x9_lstm.gif out=$ROOT/record_eval.csv
docs/results/keep_runs.sh $ROOT docs/results/envs/runs config.yaml metrics.csv eval.csv

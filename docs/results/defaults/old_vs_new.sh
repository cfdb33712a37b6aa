#!/usr/bin/env bash
# Issue 29's "done means": the new defaults (decorrelated envs, PopArt) against the old ones
# (actors.decorrelate_steps=0 learner.loss.value_normalisation=none) on the T-maze,
# select_nonmatching_object and memory_maze 9x9: lstm, the same seeds and frames, in-process actors
# (one CPU per trial, two trials at once). None of these env configs sets an unroll length, so T = 20 in both.
# Usage (from the repository root): docs/results/defaults/old_vs_new.sh [ROOT] [PARTS...]
#   PARTS: tmaze select_nonmatching_object memory_maze (default: these three, in that order), and the
#   POPGym parts repeat_previous_easy count_recall_easy (2M frames, each env config's T)
#   SEEDS=range(4,10) SUFFIX=-more docs/results/defaults/old_vs_new.sh ROOT tmaze: more seeds, in sweeps
#   of their own (<part>-<variant><SUFFIX>); the report pools them.
#   VARIANTS="decorrelation-only popart-only" ...: other variants of the defaults, from variants.sh
#   (default VARIANTS: new old).
# Then: docs/results/defaults/old_vs_new_report.sh ROOT (reports, plots, run files into docs/results/defaults/old_vs_new/).
set -eu
source "$(dirname "$0")/variants.sh"
ROOT=${1:-/tmp/defaults_old_vs_new}
shift || true
PARTS=${*:-tmaze select_nonmatching_object memory_maze}
MEMRL=${MEMRL:-memrl}
SEEDS=${SEEDS:-range(4)}
SUFFIX=${SUFFIX:-}
common=(core=lstm "seed=$SEEDS" actors.num_actors=0 tensorboard=false checkpoint.keep_last=0
        checkpoint.keep_best=false log.interval_s=10 sweep.max_concurrent=2 "sweep.root=$ROOT")
VARIANTS=${VARIANTS:-new old}
for part in $PARTS; do
  case $part in
    tmaze) setting=(env=tmaze total_frames=300000) ;;
    select_nonmatching_object) setting=(env=select_nonmatching_object total_frames=2000000) ;;
    memory_maze) setting=(env=memory_maze total_frames=2000000) ;;
    repeat_previous_easy|count_recall_easy) setting=(env=$part total_frames=2000000) ;;  # POPGym; T from the env config
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
  for variant in $VARIANTS; do
    changes=$(variant_changes "$variant") || exit 2
    # shellcheck disable=SC2086  # one override per word
    $MEMRL sweep "${common[@]}" "${setting[@]}" $changes "sweep.name=$part-$variant$SUFFIX"
  done
done

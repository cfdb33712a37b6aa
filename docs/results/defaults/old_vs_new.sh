#!/usr/bin/env bash
# Issue 29's "done means": the new defaults (decorrelated envs, PopArt) against the old ones
# (actors.decorrelate_steps=0 learner.loss.value_normalisation=none) on the T-maze,
# select_nonmatching_object and memory_maze 9x9: lstm, the same seeds and frames, in-process actors
# (one CPU per trial, two trials at once). None of these env configs sets an unroll length, so T = 20 in both.
# Usage (from the repository root): docs/results/defaults/old_vs_new.sh [ROOT] [PARTS...]
#   PARTS: tmaze select_nonmatching_object memory_maze (default: all three, in that order)
#   SEEDS=range(4,10) SUFFIX=-more docs/results/defaults/old_vs_new.sh ROOT tmaze: more seeds, in sweeps
#   of their own (<part>-<variant><SUFFIX>); the report pools them.
#   VARIANTS="decorrelation-only popart-only" ...: the ablation, one of issue 29's two changes at a time;
#   VARIANTS="baseline0.1 entropy0.03": the new defaults with learner.loss.baseline_cost=0.1, or with
#   learner.loss.entropy_cost=0.03; VARIANTS=nopopart-entropy0.003: decorrelation only with entropy_cost 0.003
#   (default VARIANTS: new old).
# Then: docs/results/defaults/old_vs_new_report.sh ROOT (reports, plots, run files into docs/results/defaults/old_vs_new/).
set -eu
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
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
  for variant in $VARIANTS; do
    case $variant in
      new) changes=() ;;
      old) changes=(actors.decorrelate_steps=0 learner.loss.value_normalisation=none) ;;
      decorrelation-only) changes=(learner.loss.value_normalisation=none) ;;
      popart-only) changes=(actors.decorrelate_steps=0) ;;
      baseline0.1) changes=(learner.loss.baseline_cost=0.1) ;;  # the new defaults with a fifth of the value loss
      entropy0.03) changes=(learner.loss.entropy_cost=0.03) ;;  # the new defaults with three times the entropy bonus
      nopopart-entropy0.003) changes=(learner.loss.value_normalisation=none learner.loss.entropy_cost=0.003) ;;  # decorrelation only, a third of the entropy bonus
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    $MEMRL sweep "${common[@]}" "${setting[@]}" "${changes[@]}" "sweep.name=$part-$variant$SUFFIX"
  done
done

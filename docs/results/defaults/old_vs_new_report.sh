#!/usr/bin/env bash
# After old_vs_new.sh: for each part, the old and new sweeps side by side (`memrl report`: final-score IQM
# with 95% CIs, P(new ends above old)), a plot per sweep, and the run files kept under
# docs/results/defaults/old_vs_new/<part>-{old,new}/ (config.yaml, metrics.csv per seed; each sweep's
# sweep.csv as sweep<SUFFIX>.csv). Sweeps <part>-<old|new><SUFFIX> (old_vs_new.sh's SUFFIX) are pooled.
# Usage (from the repository root): docs/results/defaults/old_vs_new_report.sh [ROOT] [PARTS...]
set -eu
ROOT=${1:-/tmp/defaults_old_vs_new}
shift || true
PARTS=${*:-tmaze select_nonmatching_object memory_maze}
MEMRL=${MEMRL:-memrl}
OUT=docs/results/defaults/old_vs_new
for part in $PARTS; do
  case $part in
    tmaze|select_nonmatching_object) metric=(metric=mean_success threshold=0.9) ;;
    memory_maze) metric=(metric=mean_return) ;;
  esac
  for which in old new; do
    mkdir -p "$OUT/$part-$which"
    for sweep in "$ROOT/$part-$which" "$ROOT/$part-$which"-*; do
      [ -f "$sweep/sweep.csv" ] || continue
      docs/results/keep_runs.sh "$sweep" "$OUT/$part-$which" config.yaml metrics.csv
      cp "$sweep/sweep.csv" "$OUT/$part-$which/sweep${sweep#"$ROOT/$part-$which"}.csv"
    done
    $MEMRL plot "run_dir=$OUT/$part-$which" "${metric[0]}" "out=$OUT/$part-$which/curves.png"
  done
  $MEMRL report "$OUT/$part-old" "$OUT/$part-new" "${metric[@]}" "out=$OUT/$part"
done

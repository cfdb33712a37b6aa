#!/usr/bin/env bash
# After old_vs_new.sh: for each part, its sweeps side by side (`memrl report`: final-score IQM with 95% CIs,
# the fraction of seeds reaching the threshold, P(one group ends above another)), a plot per variant, and the
# run files kept under docs/results/defaults/old_vs_new/<part>-<variant>/ (config.yaml, metrics.csv per seed;
# each sweep's sweep.csv as sweep<suffix>.csv).
# Variants: variants.sh's, where they were run.
# Sweeps <part>-<variant><suffix> (old_vs_new.sh's SUFFIX: more seeds) are pooled into their variant.
# Usage (from the repository root): docs/results/defaults/old_vs_new_report.sh [ROOT] [PARTS...]
set -eu
source "$(dirname "$0")/variants.sh"
ROOT=${1:-/tmp/defaults_old_vs_new}
shift || true
PARTS=${*:-tmaze select_nonmatching_object memory_maze}
MEMRL=${MEMRL:-memrl}
OUT=docs/results/defaults/old_vs_new
for part in $PARTS; do
  case $part in
    tmaze|select_nonmatching_object) metric=(metric=mean_success threshold=0.9) ;;
    memory_maze|repeat_previous_easy|count_recall_easy) metric=(metric=mean_return) ;;
  esac
  folders=()
  for variant in $VARIANT_NAMES; do
    kept=
    for sweep in "$ROOT/$part-$variant" "$ROOT/$part-$variant"-*; do
      [ -f "$sweep/sweep.csv" ] || continue
      kept=1
      mkdir -p "$OUT/$part-$variant"
      docs/results/keep_runs.sh "$sweep" "$OUT/$part-$variant" config.yaml metrics.csv
      cp "$sweep/sweep.csv" "$OUT/$part-$variant/sweep${sweep#"$ROOT/$part-$variant"}.csv"
    done
    [ -n "$kept" ] || continue
    $MEMRL plot "run_dir=$OUT/$part-$variant" "${metric[0]}" "out=$OUT/$part-$variant/curves.png"
    folders+=("$OUT/$part-$variant")
  done
  $MEMRL report "${folders[@]}" "${metric[@]}" "out=$OUT/$part"
done

#!/usr/bin/env bash
# IMPALA on select_nonmatching_object (experiment=quickstart, the `make train` setting) for more
# memory cores, one after another, each for FRAMES env frames or LIMIT seconds, whichever comes
# first (timeout sends SIGTERM; memrl then checkpoints and stops), then one plot of every run.
# A run is "<name>[:override,override...]", e.g. compressive_transformer:core.compression_rate=4.
# Usage: docs/results/impala/run_cores.sh LIMIT_S FRAMES RUN [RUN ...]
set -uo pipefail
cd "$(dirname "$0")/../../.."
LIMIT=$1 FRAMES=$2
shift 2
ROOT=runs/cores-quickstart
for run in "$@"; do
  core=${run%%:*}
  overrides=()
  label=$core
  if [[ $run == *:* ]]; then
    IFS=, read -ra overrides <<< "${run#*:}"
    label=$core-$(printf '%s' "${run#*:}" | tr -c 'A-Za-z0-9_\n' '-' | sed 's/core-//g')
  fi
  timeout -s TERM "$LIMIT" .venv/bin/memrl train core="$core" "${overrides[@]}" experiment=quickstart \
    total_frames="$FRAMES" run_root=$ROOT name="$label" || echo "$label stopped by the time limit (exit $?)"
done
# Keep each run's curve beside the results (cores_table.py can read them there).
docs/results/keep_runs.sh $ROOT docs/results/impala/runs config.yaml metrics.csv
runs=$(ls -d $ROOT/*/ | paste -sd, -)
.venv/bin/memrl plot "run_dir=[$runs]" metric=mean_success out=docs/results/impala/cores_success.png \
  "title='select_nonmatching_object (quickstart): success per core'"
.venv/bin/memrl plot "run_dir=[$runs]" out=docs/results/impala/cores_return.png \
  "title='select_nonmatching_object (quickstart): return per core'"

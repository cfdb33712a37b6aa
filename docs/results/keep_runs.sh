#!/bin/bash
# Run folders (runs/) are not committed: copy the named files of each run under RUN_ROOT into
# DEST/<run folder name>/, beside the results they back. Files a run lacks are skipped.
# Usage: docs/results/keep_runs.sh RUN_ROOT DEST FILE [FILE ...]
RUN_ROOT=$1 DEST=$2
shift 2
for run in "$RUN_ROOT"/*/; do
  [ -d "$run" ] || continue
  for file in "$@"; do
    [ -f "$run/$file" ] || continue
    mkdir -p "$DEST/$(basename "$run")"
    cp "$run/$file" "$DEST/$(basename "$run")/"
  done
done

#!/usr/bin/env bash
# Runs every test marked `learning` (slow ones too) under three CPU kernel settings and records each
# threshold check's value (tests/conftest.py, the `margin` fixture); then writes margins.md from them.
#   docs/testing/measure_margins.sh            # from the repository root, with .venv set up
# Settings: the machine's own kernels; ATen's portable (non-SIMD) kernels and MKL's conditional
# numerical reproducibility mode (another reduction order); the same with MKL limited to SSE4.2.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=docs/testing
python=${PYTHON:-.venv/bin/python}
run() {  # run NAME ENV...
    local name=$1; shift
    rm -f "$out/margins_$name.jsonl"
    env "$@" MEMRL_TEST_MARGINS="$out/margins_$name.jsonl" "$python" -m pytest -q -p no:cacheprovider -m learning tests \
        | tail -3
}
run native
run portable ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
run sse42 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE MKL_ENABLE_INSTRUCTIONS=SSE4_2
"$python" docs/testing/margins_table.py "$out"/margins_native.jsonl "$out"/margins_portable.jsonl \
    "$out"/margins_sse42.jsonl > "$out/margins.md"

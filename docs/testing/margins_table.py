"""Table of the learning tests' threshold checks from MEMRL_TEST_MARGINS files (one per kernel setting).

    python docs/testing/margins_table.py margins_native.jsonl margins_portable.jsonl ... > margins.md

One row per (test, quantity, threshold); one value column per file. Headroom is the distance to the
threshold as a fraction of the threshold (|threshold - value| / |threshold|, or the absolute distance
where the threshold is 0), the smallest over the files; negative means the check failed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def headroom(op: str, value: float, threshold: float) -> float:
    distance = threshold - value if op == "<" else value - threshold
    return distance / abs(threshold) if threshold else distance


def main(paths: list[str]) -> None:
    names = [Path(p).stem.removeprefix("margins_") for p in paths]
    rows: dict[tuple, dict[str, float]] = {}
    for name, path in zip(names, paths):
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            rows.setdefault((r["test"], r["quantity"], r["op"], r["threshold"]), {}).setdefault(name, r["value"])
    print("| test | quantity | check | " + " | ".join(names) + " | least headroom |")
    print("|---|---|---|" + "---:|" * len(names) + "---:|")
    for (test, quantity, op, threshold), values in rows.items():
        cells = [f"{values[n]:.4g}" if n in values else "—" for n in names]
        least = min(headroom(op, v, threshold) for v in values.values())
        print(f"| `{test.removeprefix('tests/')}` | {quantity} | {op} {threshold:g} | " + " | ".join(cells) + f" | {least:.0%} |")


if __name__ == "__main__":
    main(sys.argv[1:])

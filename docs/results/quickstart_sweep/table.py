"""Per seed: the first logged frame count with mean_success >= 0.9, and the success at the end.

    .venv/bin/python docs/results/quickstart_sweep/table.py <sweep folder> [<sweep folder> ...]

One column pair per sweep folder (its trials are the seed=<n> folders), seeds as rows, then the
number of seeds that reached 0.9. A trial short of its config's total_frames (still running, or
stopped) says so in its "at the end" cell: its "never" is not yet a failure.
"""
from __future__ import annotations

import sys
from pathlib import Path

from training.run_dir import load_config, read_metrics

THRESHOLD = 0.9


def seed_rows(sweep: Path) -> dict[int, tuple[float | None, str]]:
    rows = {}
    for trial in sweep.glob("seed=*"):
        metrics = read_metrics(trial)
        first = next((f for f, s in zip(metrics["frames"], metrics["mean_success"]) if s >= THRESHOLD), None)
        last = f"{metrics['mean_success'][-1]:.3f}"
        if metrics["frames"][-1] < load_config(trial)["total_frames"]:
            last += f" (unfinished: {metrics['frames'][-1]:,.0f} frames)"
        rows[int(trial.name.split("=")[1])] = (first, last)
    return rows


def main() -> None:
    sweeps = [Path(p) for p in sys.argv[1:]]
    tables = [seed_rows(s) for s in sweeps]
    print("| seed | " + " | ".join(f"{s.name}: first success ≥ 0.9 | {s.name}: at the end" for s in sweeps) + " |")
    print("|---:|" + "---:|---:|" * len(sweeps))
    for seed in sorted(set().union(*tables)):
        cells = []
        for table in tables:
            first, last = table.get(seed, (None, "nan"))
            cells += [f"{first:,.0f}" if first is not None else "never", last]
        print(f"| {seed} | " + " | ".join(cells) + " |")
    reached = [f"**{sum(f is not None for f, _ in t.values())} of {len(t)}**" for t in tables]
    print("| reached 0.9 | " + " | ".join(f"{r} | " for r in reached) + "|")


if __name__ == "__main__":
    main()

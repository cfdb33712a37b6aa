"""The policy's entropy per step along training, from each run's metrics.csv.

    .venv/bin/python docs/results/defaults/entropy_per_step.py FRAMES <sweep folder> [<sweep folder> ...]

FRAMES: comma-separated frame counts, e.g. 500000,750000. Per seed (the seed=<n> trials of each sweep
folder): at the logged row nearest each frame count, the mean entropy per step in nats,
-entropy_loss / (entropy_cost x T), with the entropy_cost the update used (entropy_loss sums over the T steps of an unroll and averages
over the batch), and mean_success (or mean_return where the env has no success).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from training.run_dir import load_config, read_metrics
from training.unroll import resolve_unroll_length


def entropy_row(trial: Path, frames: list[int]) -> list[str]:
    config, metrics = load_config(trial), read_metrics(trial)
    # The cost each logged update used (runs with an entropy schedule log it; older runs had the config's, constant).
    costs = metrics.get("entropy_cost") or [config["learner"]["loss"]["entropy_cost"]] * len(metrics["frames"])
    unroll_length = resolve_unroll_length(config)
    score = "mean_success" if not all(math.isnan(s) for s in metrics["mean_success"]) else "mean_return"
    cells = []
    for target in frames:
        row = min(range(len(metrics["frames"])), key=lambda i: abs(metrics["frames"][i] - target))
        cells.append(f"{-metrics['entropy_loss'][row] / (costs[row] * unroll_length):.2f} / {metrics[score][row]:.2f}")
    return cells


def main() -> None:
    frames = [int(f) for f in sys.argv[1].split(",")]
    print("| sweep | seed | " + " | ".join(f"entropy / score at {f:,}" for f in frames) + " |")
    print("|---|---:|" + "---|" * len(frames))
    for sweep in map(Path, sys.argv[2:]):
        for trial in sorted(sweep.glob("seed=*"), key=lambda t: int(t.name.split("=")[1].split(",")[0])):
            print(f"| {sweep.name} | {trial.name.split('=')[1]} | " + " | ".join(entropy_row(trial, frames)) + " |")


if __name__ == "__main__":
    main()

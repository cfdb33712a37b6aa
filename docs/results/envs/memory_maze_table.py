"""Mean training return (last 200 episodes) of each memory_maze 9x9 run at the same frame counts.

Usage: python docs/results/envs/memory_maze_table.py docs/results/envs/runs/*-memory_maze
Prints a markdown table: one row per frame count, one column per run (the row logged at or
just before that many frames).
"""
import csv
import sys
from pathlib import Path

FRAMES = (500_000, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000, 7_000_000)


def curve(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.csv") as f:
        return [(int(row["frames"]), float(row["mean_return"])) for row in csv.DictReader(f)]


def at(points: list[tuple[int, float]], frames: int) -> float | None:
    before = [value for f, value in points if f <= frames]
    return before[-1] if before and points[-1][0] >= frames else None


def main(runs: list[str]) -> None:
    curves = {Path(run).name.split("-")[2]: curve(Path(run)) for run in runs}  # <date>-<time>-<core>-memory_maze
    names = list(curves)
    print("| frames | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for frames in FRAMES:
        cells = [at(curves[n], frames) for n in names]
        print(f"| {frames:,} | " + " | ".join("—" if c is None else f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

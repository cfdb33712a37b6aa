"""Table of IMPALA runs from their metrics.csv: frames, time, and returns at fixed frame marks and at the end.

    .venv/bin/python docs/results/compressive/rl_table.py runs/compressive-rl/* --marks 50000 100000 200000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from training.run_dir import load_config, read_metrics  # noqa: E402
from training.supervised.tasks.base import markdown_table  # noqa: E402


def at_frames(metrics: dict, column: str, frames: int) -> float:
    """The last logged value of ``column`` at or before ``frames`` (NaN if none yet)."""
    value = float("nan")
    for done, v in zip(metrics["frames"], metrics[column]):
        if done <= frames:
            value = v
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--marks", nargs="*", type=int, default=[])
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        cfg, metrics = load_config(run), read_metrics(run)
        core = cfg["core"]
        row = {"run": cfg["name"], "core": core["name"], "compression_rate": core.get("compression_rate", ""),
               "frames": int(metrics["frames"][-1]), "time_s": metrics["time_s"][-1],
               "mean_fps": round(metrics["frames"][-1] / metrics["time_s"][-1], 1)}
        for mark in args.marks:
            row[f"return_at_{mark}"] = at_frames(metrics, "mean_return", mark)
        row["final_mean_return"] = metrics["mean_return"][-1]
        row["final_mean_success"] = metrics["mean_success"][-1]
        rows.append(row)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

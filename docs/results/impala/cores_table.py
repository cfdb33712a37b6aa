"""The table of docs/results/impala.md's per-core section, from the run folders of run_cores.sh.

Usage: .venv/bin/python docs/results/impala/cores_table.py [runs/cores-quickstart]
"""
import math
import sys
from pathlib import Path

import yaml

from training.run_dir import read_metrics
from training.supervised.tasks.base import markdown_table


def first_frames_at(metrics, level: float):
    return next((int(f) for f, s in zip(metrics["frames"], metrics["mean_success"]) if s >= level), None)


def row(run: Path) -> dict:
    config = yaml.safe_load((run / "config.yaml").read_text())
    metrics = read_metrics(run)
    success = [s for s in metrics["mean_success"] if not math.isnan(s)]
    return {
        "run": config.get("name") or run.name,
        "core": config["core"]["name"],
        "frames": int(metrics["frames"][-1]),
        "wall_s": round(metrics["time_s"][-1]),
        "frames_per_s": round(metrics["frames"][-1] / metrics["time_s"][-1]),
        "final_success": round(success[-1], 3),
        "best_success": round(max(success), 3),
        "frames_to_0.9": first_frames_at(metrics, 0.9) or "not reached",
    }


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/cores-quickstart")
    print(markdown_table([row(run) for run in sorted(root.iterdir()) if (run / "metrics.csv").exists()]))

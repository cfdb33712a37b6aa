"""The table of docs/results/defaults.md from the run folders here: mean_return (last 200 episodes) of each run at
the frames every run reached (the slowest run's last row), and at its own last row.
Usage (from the repository root): python docs/results/defaults/table.py"""
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
runs = {p.name.split("-", 2)[2]: pd.read_csv(p / "metrics.csv") for p in sorted(HERE.iterdir()) if (p / "metrics.csv").is_file()}
common = min(int(m["frames"].iloc[-1]) for m in runs.values())


def at(metrics: pd.DataFrame, frames: int, column: str) -> float:
    """The column in the last row logged at or before ``frames``."""
    return float(metrics[metrics["frames"] <= frames][column].iloc[-1])


print(f"| run | mean_return at {common:,} frames | frames reached | mean_return there | entropy_loss there | value_std there |")
print("| --- | --- | --- | --- | --- | --- |")
for name, m in runs.items():
    last = m.iloc[-1]
    print(f"| {name} | {at(m, common, 'mean_return'):.3f} | {int(last['frames']):,} | {last['mean_return']:.3f} | "
          f"{last['entropy_loss']:.3f} | {last['value_std']:.3f} |")

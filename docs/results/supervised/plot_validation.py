"""Validation curves of bAbI runs: mean task error (%) against batches and against hours of training.

    .venv/bin/python docs/results/supervised/plot_validation.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]

One line per run (its metrics.csv rows that hold a validation), a dotted line at issue 27's target
(10% mean test error). Printed: a markdown table per run of its time, batches, epochs, batches/s, the
batch of its best validation (by answer accuracy, as the trainer keeps it), the validation loss at 12,000
batches and at the end, and its training mean task error over the last 10 rows.
"""
from __future__ import annotations

import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from training.run_dir import read_metrics  # noqa: E402

METRIC = "val_mean_task_error_pct"
TARGET_PCT = 10.0
LOSS_AT_BATCHES = 12000


def validations(run_dir: str) -> tuple[list[float], list[float], list[float]]:
    """(batches, hours, mean task error %) at each validation of the run."""
    m = read_metrics(run_dir)
    rows = [(b, t / 3600, v) for b, t, v in zip(m["batches"], m["time_s"], m[METRIC]) if not math.isnan(v)]
    return tuple(map(list, zip(*rows))) if rows else ([], [], [])


def summary_row(label: str, run_dir: str) -> str:
    m = read_metrics(run_dir)
    validated = [i for i, v in enumerate(m[METRIC]) if not math.isnan(v)]
    best = max(validated, key=lambda i: m["val_accuracy"][i])
    loss_at = next((m["val_loss"][i] for i in validated if m["batches"][i] == LOSS_AT_BATCHES), math.nan)
    last = m["mean_task_error_pct"][-10:]
    return (f"| {label} | {m['time_s'][-1]:,.0f} s, {m['batches'][-1]:,.0f} ({m['epoch'][-1]:.1f}) | "
            f"{m['batches'][-1] / m['time_s'][-1]:.1f} | {m['batches'][best]:,.0f} | "
            f"{loss_at:.2f}, {m['val_loss'][validated[-1]]:.2f} | {sum(last) / len(last):.1f}% |")


def main(out: str, runs: list[str]) -> None:
    fig, (by_batches, by_hours) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for item in runs:
        label, _, run_dir = item.partition("=")
        batches, hours, error = validations(run_dir)
        by_batches.plot(batches, error, label=label)
        by_hours.plot(hours, error, label=label)
        if error:
            print(f"{label}: last validation at {batches[-1]:,.0f} batches ({hours[-1]:.2f} h): {error[-1]:.1f}%")
    for ax, xlabel in ((by_batches, "batches (of 64 stories)"), (by_hours, "hours of training")):
        ax.axhline(TARGET_PCT, color="grey", linestyle=":", label=f"target {TARGET_PCT:g}%")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    by_batches.set_ylabel("validation mean task error (%)")
    by_hours.legend()
    fig.suptitle("joint bAbI 10k, validation set (5% of each task's training stories)")
    fig.savefig(out, dpi=100, bbox_inches="tight")
    print(f"wrote {out}\n")
    print("| run | time, batches (epochs) | batches/s | best validation (batch) | validation loss at "
          f"{LOSS_AT_BATCHES // 1000}k batches, at the end | training mean task error, last 10 rows |")
    print("|---|---|---:|---|---|---:|")
    for item in runs:
        print(summary_row(*item.split("=", 1)))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2:])

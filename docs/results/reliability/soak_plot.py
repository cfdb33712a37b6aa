"""Learner memory and frames/s over time from `memrl bench soak` series files, one line per run.

Usage: .venv/bin/python docs/results/reliability/soak_plot.py OUT.png LABEL=SERIES.json[:CORE] ...
(CORE picks one core's samples from a file holding several.)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def samples(spec: str) -> tuple[str, list[dict]]:
    label, path = spec.split("=", 1)
    path, _, core = path.partition(":")
    rows = json.loads(open(path).read())
    return label, [r for r in rows if not core or r["core"] == core]


def main(out: str, specs: list[str]) -> None:
    fig, (memory, speed) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in map(samples, specs):
        minutes = [r["time_s"] / 60 for r in rows]
        memory.plot(minutes, [r["learner_rss_mib"] for r in rows], label=label)
        speed.plot(minutes, [r["fps"] for r in rows], label=label)
    memory.set(xlabel="minutes", ylabel="learner resident memory (MiB)", title="learner RSS")
    speed.set(xlabel="minutes", ylabel="env frames / s", title="throughput")
    for axis in (memory, speed):
        axis.grid(alpha=0.3)
    memory.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])

"""A/B of two commits' `memrl bench throughput` (issue 28): the whole training loop, alternating old and new.

    .venv/bin/python docs/results/throughput/ab_commits.py OLD_COMMIT [repeats] [bench overrides ...] \
        > docs/results/throughput/ab_commits_<env>.json

Checks OLD_COMMIT out into a temporary folder (``git archive``), then runs the bench (memrl rows only: ``rllib=false
limits=false``, plus the overrides) ``repeats`` times for each side in turn, old first, each in a fresh process
whose imports come from its own tree; records the load average before and after each run. Prints one JSON
document: every run, and the median, min and max over rounds of new / old frames/s.
"""
from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def bench(tree: Path, overrides: list[str], out: Path) -> dict:
    before = os.getloadavg()
    subprocess.run([sys.executable, "-m", "training.cli", "bench", "throughput", "rllib=false", "limits=false",
                    *overrides, f"out={out}"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                   stdout=subprocess.DEVNULL)
    row = next(r for r in json.loads(out.read_text()) if r["system"] == "memrl")
    return {**row, "load_average_before": list(before), "load_average_after": list(os.getloadavg())}


def main(old: str, repeats: str = "3", *overrides: str) -> None:
    new = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "archive", old], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old_tree, filter="data")
        for repeat in range(int(repeats)):
            for side, tree in (("old", old_tree), ("new", ROOT)):
                row = bench(tree, list(overrides), Path(tmp) / f"{side}_{repeat}.json")
                runs.append({"side": side, "repeat": repeat, **row})
                print(f"{side} {repeat}: {row['frames_per_s']:,.0f} frames/s, load {row['load_average_before']}",
                      file=sys.stderr, flush=True)
    ratios = [n["frames_per_s"] / o["frames_per_s"] for o, n in zip(runs[::2], runs[1::2])]
    print(json.dumps({
        "old_commit": old, "new_commit": new + ("+uncommitted changes" if dirty else ""), "overrides": list(overrides),
        "cpus": os.cpu_count(), "runs": runs,
        "median_new_over_old": statistics.median(ratios), "min_new_over_old": min(ratios),
        "max_new_over_old": max(ratios),
    }, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])

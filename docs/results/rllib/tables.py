"""The tables of docs/results/rllib.md, rendered from the measurements in this folder (no hand-copied numbers).

    .venv/bin/python docs/results/rllib/tables.py           # print the three tables
    .venv/bin/python docs/results/rllib/tables.py --write   # replace them between their markers in rllib.md

Markers in rllib.md: ``<!-- NAME -->`` ... ``<!-- /NAME -->`` for NAME in STATE_TABLE,
THROUGHPUT_TABLE, CURVE_TABLE, CURVE_1M_TABLE.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "rllib.md"
sys.path.insert(0, str(HERE.parents[2]))

from training.supervised.tasks.base import markdown_table  # noqa: E402

MIB = 2**20
STATE_FILES = ("rllib_state.json", "rllib_state_65536_slots.json")
THROUGHPUT_FILE = "throughput_lstm.json"
CURVES = {  # table -> (backend, metrics.csv copied from its run folder)
    "CURVE_TABLE": [
        ("memrl IMPALA", "curves/lstm_memrl_metrics.csv"),
        ("RLlib IMPALA + memrl RLModule", "curves/lstm_rllib_impala_metrics.csv"),
    ],
    "CURVE_1M_TABLE": [
        ("memrl IMPALA", "curves/lstm_memrl_1M_seed0_metrics.csv"),
        ("RLlib IMPALA + memrl RLModule", "curves/lstm_rllib_impala_1M_seed0_metrics.csv"),
    ],
}


def _load(name: str):
    # The bench writes NaN (rllib_vs_memrl of a stateless core), which json reads as float nan.
    return json.loads((HERE / name).read_text())


def _mib(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def state_table() -> str:
    rows = []
    for name in STATE_FILES:
        for r in _load(name):
            state = r["state_bytes_per_env"]
            measured = r.get("measured_rllib_bytes_per_step")
            rows.append({
                "core": r["core"],
                "size": r.get("size", "configs/core defaults"),  # the first file predates the size column
                "state per env": f"{state:,} B ({state / MIB:.2f} MiB)" if state >= MIB / 10 else f"{state:,} B",
                "RLlib MiB / batch": _mib(r["rllib_state_mib_per_batch"]),
                "memrl MiB / batch": _mib(r["memrl_state_mib_per_batch"]),
                "RLlib / memrl": "-" if math.isnan(r["rllib_vs_memrl"]) else f"{r['rllib_vs_memrl']:.0f}x",
                "measured RLlib B / sampled step": "-" if measured is None else f"{measured:,.1f}",
                "measured / state": "-" if measured is None else f"{measured / state:.3f}",
                "fits max_state_mib=2048": "yes" if r["fits_max_state_mib"] else "**no**",
            })
    return markdown_table(rows)


def throughput_table() -> str:
    rows = [
        {
            "system": r["system"], "core": r["core"], "parameters": f"{r['parameters']:,}",
            "frames/s": f"{r['frames_per_s']:.0f}", "updates/s": f"{r['updates_per_s']:.2f}",
            "frames/s vs memrl": f"{r['frames_per_s_vs_memrl']:.2f}", "updates/s vs memrl": f"{r['updates_per_s_vs_memrl']:.2f}",
            "measured frames": f"{r['measured_frames']:,}", "measured s": f"{r['measured_s']:.1f}",
        }
        for r in _load(THROUGHPUT_FILE)
    ]
    return markdown_table(rows)


def _columns(path: Path) -> dict[str, list[float]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(row[k]) for row in rows] for k in rows[0]}  # float("nan") parses "nan"


def _range(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]  # the first rows have no finished episode yet
    return f"{min(finite):.{digits}f} to {max(finite):.{digits}f}"


def curve_table(table: str) -> str:
    rows = []
    for backend, name in CURVES[table]:
        m = _columns(HERE / name)
        rows.append({
            "backend": backend, "metrics.csv": f"`rllib/{name}`", "frames": f"{m['frames'][-1]:,.0f}",
            "updates": f"{m['updates'][-1]:.0f}", "episodes": f"{m['episodes'][-1]:.0f}", "time_s": f"{m['time_s'][-1]:.0f}",
            "final mean_return": f"{m['mean_return'][-1]:.2f}", "mean_return over the run": _range(m["mean_return"], 2),
            "final mean_success": f"{m['mean_success'][-1]:.3f}", "mean_success over the run": _range(m["mean_success"], 3),
        })
    return markdown_table(rows)


TABLES = {
    "STATE_TABLE": state_table,
    "THROUGHPUT_TABLE": throughput_table,
    **{name: (lambda name=name: curve_table(name)) for name in CURVES},
}


def write(page: Path = PAGE) -> None:
    text = page.read_text()
    for name, render in TABLES.items():
        pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{page} has no '<!-- {name} -->' ... '<!-- /{name} -->' markers; add them where the table goes")
        text = pattern.sub(lambda match, table=render(): match.group(1) + table + "\n" + match.group(2), text)
    page.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the tables in {PAGE.name} instead of printing them")
    if parser.parse_args().write:
        write()
    else:
        for name, render in TABLES.items():
            print(f"{name}\n{render()}\n")


if __name__ == "__main__":
    main()

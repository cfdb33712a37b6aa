"""The tables of docs/results/bloom.md, rendered from the `memrl bench bloom` JSON files in this folder.

    .venv/bin/python docs/results/bloom/tables.py    # one markdown table per JSON (run_bloom.sh writes them)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from training.supervised.tasks.base import markdown_table  # noqa: E402

FILES = ("class_based.json", "uniform.json", "database.json")


def run_table(rows: list[dict]) -> str:
    """Every training run at its best precision; the best per (set size, core) in bold."""
    best = {(r["set_size"], r["core"]): r["total_bits"] for r in rows if r["section"] == "best"}
    table = []
    for r in (r for r in rows if r["section"] == "run"):
        mark = "**" if best.get((r["set_size"], r["core"])) == r["total_bits"] else ""
        table.append({
            "n": r["set_size"], "core": r["core"], "size": r["size"], "batches": r["training_batches"],
            "train s": f"{r['seconds']:.0f}", "val. acc.": f"{r['validation_accuracy']:.3f}",
            "bits/value": r["precision_bits"], "state bits": f"{r['state_bits']:.0f}",
            "model FPR": f"{r['model_false_positive_rate']:.4f}", "false neg./set": f"{r['false_negatives_per_set']:.1f}",
            "backup bits": f"{r['backup_bits']:.0f}", "total bits": f"{mark}{r['total_bits']:.0f}{mark}",
            "overall FPR": f"{r['overall_false_positive_rate']:.4f}", "Bloom bits (optimal)": f"{r['bloom_bits']:.0f}",
            "Bloom / total": f"{mark}{r['bloom_over_total']:.2f}x{mark}",
        })
    return markdown_table(table)


def main() -> None:
    for name in FILES:
        path = HERE / name
        if not path.exists():
            print(f"{name}: not measured (docs/results/bloom/run_bloom.sh writes it)\n")
            continue
        print(f"{name}\n{run_table(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()

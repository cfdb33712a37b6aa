"""Results on disk: a run's evaluation (``write_result``, ``show_result``) and side-by-side tables for
docs/results from finished runs.

    python -m training.supervised.report curriculum runs/a runs/b runs/c
    python -m training.supervised.report babi lstm=runs/a/eval.json sam=runs/b/eval.json

``curriculum``: per run, the core, its training time and batches, the level h
reached, when (seconds and batches, at log-row resolution) each level was first
reached, and the last validation bit errors.
``babi``: the per-task test-error table of thesis Table 3.1, one column per run.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..run_dir import load_config, read_metrics
from .tasks import build_task
from .tasks.babi import error_table_markdown
from .tasks.base import markdown_table


def curriculum_rows(run_dirs: list[str]) -> list[dict]:
    rows = []
    for run_dir in run_dirs:
        cfg, metrics = load_config(Path(run_dir)), read_metrics(run_dir)
        levels, seconds, batches = metrics["level"], metrics["time_s"], metrics["batches"]
        row = {"core": cfg["core"]["name"], "run": Path(run_dir).name, "time_s": seconds[-1], "batches": int(batches[-1]),
               "sequences": int(metrics["sequences"][-1]), "level_reached": int(levels[-1]),
               "max_length_steps": _steps(cfg["task"], int(levels[-1]))}
        level = 2
        while level <= levels[-1]:
            first = next(i for i, value in enumerate(levels) if value >= level)
            row[f"s_to_level_{level}"] = seconds[first]
            row[f"batches_to_level_{level}"] = int(batches[first])
            level *= 2
        validation = [v for v in metrics.get("val_bit_errors_per_seq", []) if not math.isnan(v)]
        row["last_val_bit_errors_per_seq"] = validation[-1] if validation else math.nan
        rows.append(row)
    return rows


def _steps(task_cfg: dict, level: int) -> int:
    """Sequence length T at ``level`` (the longest sequence that level can draw)."""
    task = build_task(task_cfg, seed=0)
    return task.sample(level, 1, torch.Generator().manual_seed(0)).length


def write_result(result: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    """``<stem>.json`` (one object per row, plus any summary) and ``<stem>.md``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    payload = {k: v for k, v in result.items() if k != "markdown"}
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(result["markdown"] + "\n")
    return json_path, md_path


def show_result(result: dict[str, Any], stem: Path) -> None:
    """``memrl eval``'s output: the table, written to ``<stem>.json`` / ``<stem>.md`` and printed."""
    json_path, md_path = write_result(result, stem)
    print(result["markdown"])
    print(f"wrote {json_path} and {md_path}")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("curriculum", "babi"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if argv[0] == "curriculum":
        print(markdown_table(curriculum_rows(argv[1:])))
        return 0
    results = {}
    for item in argv[1:]:
        name, _, path = item.partition("=")
        results[name] = json.loads(Path(path).read_text())
    notes = sorted({note for result in results.values() for note in result.get("notes", [])})
    print(error_table_markdown(results, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

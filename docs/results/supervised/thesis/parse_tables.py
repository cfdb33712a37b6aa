"""The thesis's bAbI Tables 3.1 and 3.2 as ``memrl eval``-shaped JSON, one file per model, for
``python -m training.supervised.report babi "thesis SAM=docs/results/supervised/thesis/table_3_1_sam.json" ...``.

    python docs/results/supervised/thesis/parse_tables.py /work/shared/papers/004_f190e774187d22c4.txt

Reads the tables from the thesis text (tab-separated rows: 20 tasks, the mean error, the failed count),
checks that each column's 20 task errors reproduce its printed mean (to the table's rounding) and failed
count (error > 5%), and writes ``table_3_1_<model>.json`` beside this file: ``rows``/``summary`` from
Table 3.1 (the best of 15 runs by validation), ``over_runs`` from Table 3.2 (mean ± std over the 15 runs).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from training.supervised.tasks.babi import FAILED_ABOVE_PCT

TASKS = ["single-supporting-fact", "two-supporting-facts", "three-supporting-facts", "two-arg-relations",
         "three-arg-relations", "yes-no-questions", "counting", "lists-sets", "simple-negation",
         "indefinite-knowledge", "basic-coreference", "conjunction", "compound-coreference", "time-reasoning",
         "basic-deduction", "basic-induction", "positional-reasoning", "size-reasoning", "path-finding",
         "agents-motivations"]
MODELS = ["lstm", "dnc", "sdnc", "dam", "sam"]  # the tables' first five columns


def table_rows(lines: list[str], first_row: str) -> list[list[str]]:
    """The 22 tab-separated rows (20 tasks, mean, failed) of the table whose first row starts ``first_row``."""
    start = lines.index(next(line for line in lines if line.startswith(first_row)))
    return [line.split("\t") for line in lines[start:start + 22]]


def main(thesis_text: str) -> None:
    lines = Path(thesis_text).read_text().splitlines()
    best = table_rows(lines, "1: 1 supporting fact\t28.8")   # Table 3.1
    runs = table_rows(lines, "1: 1 supporting fact\t30.9")   # Table 3.2
    for column, model in enumerate(MODELS, start=1):
        rows = [{"task": i + 1, "name": TASKS[i], "error_pct": float(best[i][column])} for i in range(20)]
        mean, failed = float(best[20][column]), int(best[21][column])
        errors = [r["error_pct"] for r in rows]
        assert abs(sum(errors) / 20 - mean) <= 0.05 + 1e-9, (model, sum(errors) / 20, mean)
        assert sum(e > FAILED_ABOVE_PCT for e in errors) == failed, model
        over = [{"task": i + 1, "name": TASKS[i], "error_pct": float(runs[i][column].split("±")[0]),
                 "std_pct": float(runs[i][column].split("±")[1])} for i in range(20)]
        out = {"rows": rows, "summary": {"mean_error_pct": mean, "failed_tasks": failed},
               "over_runs": {"rows": over, "mean_error_pct": runs[20][column].strip(),
                             "failed_tasks": runs[21][column].strip()},
               "notes": [f"Thesis Table 3.1 ({model.upper()}): the best of 15 runs by validation, joint bAbI 10k, "
                         "word encoding; over_runs: Table 3.2, mean ± std over the 15 runs with the best hyperparameters"]}
        path = Path(__file__).with_name(f"table_3_1_{model}.json")
        path.write_text(json.dumps(out, indent=1))
        print(f"{model}: mean {mean}% ({failed} failed) -> {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1])

"""Seed spread of the supervised learning tests: the same runs as the tests, at seeds 0-3 (bAbI 0-5).

    .venv/bin/python docs/testing/seed_spread.py docs/testing/seed_spread.json

The tests run seed 0; these numbers say how far the other seeds sit from each test's threshold
(docs/testing.md). Each run is the test's own configuration with ``seed=<s>``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from test_stream_tasks import write_recordings, tiny_core  # noqa: E402
from test_supervised_trainer import QUIET, TOY_COPY, write_toy_babi  # noqa: E402

from training import cli  # noqa: E402
from training.run_dir import read_metrics  # noqa: E402


def run(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        assert cli.main(["supervised", *overrides, f"run_root={tmp}"]) == 0
        (folder,) = Path(tmp).iterdir()
        metrics = read_metrics(folder)
        eval_json = folder / "eval.json"
        return {"metrics": metrics, "eval": json.loads(eval_json.read_text()) if eval_json.exists() else None}


def valid(values):
    return [v for v in values if v == v]


def main() -> None:
    rows = []
    for seed in range(4):
        out = run([*TOY_COPY, "task.curriculum.window=10", "task.curriculum.threshold=3.0", "max_batches=400",
                   "validation.interval_batches=100", f"seed={seed}"])
        m = out["metrics"]
        first = next((b for b, level in zip(m["batches"], m["level"]) if level >= 4), None)
        rows.append({"test": "curriculum", "seed": seed, "batches_to_level_4": first, "budget": 400})
    for name, level, batches in (("copy", 2, 300), ("associative_recall", 1, 300), ("priority_sort", 2, 600)):
        for seed in range(4):
            out = run([f"task={name}", "task.bits=3", f"task.curriculum.start_level={level}",
                       f"task.curriculum.max_level={level}", "core.hidden_size=32", "optimizer.name=adam",
                       "optimizer.learning_rate=1e-2", f"max_batches={batches}", "validation.interval_batches=10",
                       *QUIET, f"seed={seed}"])
            val = valid(out["metrics"]["val_loss_bits_per_seq"])
            rows.append({"test": f"algorithmic {name}", "seed": seed, "final_over_first_val_loss": val[-1] / val[0],
                         "threshold": 0.7})
    with tempfile.TemporaryDirectory() as tmp:
        data = write_toy_babi(Path(tmp) / "data")
        for seed in range(6):
            out = run(["task=babi", f"task.path={data}", "task.validation_fraction=0.1", "core.hidden_size=32",
                       "optimizer.name=adam", "optimizer.learning_rate=1e-2", "batch_size=16", "max_batches=1500",
                       "validation.interval_batches=300", *QUIET, "eval.at_end=true", f"seed={seed}"])
            qa1 = valid(out["metrics"]["val_error_pct_qa1"])
            test_qa1 = next(r for r in out["eval"]["rows"] if r["task"] == 1)["error_pct"]
            rows.append({"test": "toy bAbI", "seed": seed, "val_error_pct_qa1_every_300": qa1,
                         "test_error_pct_qa1": test_qa1, "threshold": 25})
        folder = write_recordings(Path(tmp) / "rec", indices=range(8))
        for seed in range(4):
            out = run(["task=speech", f"task.path={folder}", "task.test_below=1", "task.validation_below=2",
                       "task.segment_length=32", *tiny_core("lstm"), "model.embedding_size=16", "optimizer.name=adam",
                       "optimizer.learning_rate=1e-2", "batch_size=8", "max_batches=150",
                       "validation.interval_batches=75", "eval.at_end=false", *QUIET[:4], f"seed={seed}"])
            rows.append({"test": "speech", "seed": seed, "final_val_bits_per_sample":
                         valid(out["metrics"]["val_bits_per_sample"])[-1], "threshold": 6.0})
    Path(sys.argv[1]).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

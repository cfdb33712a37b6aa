"""Table of supervised stream runs (language, speech) from their run folders: parameters, budget, held-out bits.

    .venv/bin/python docs/results/compressive/collect.py runs/compressive/*-lm-* --out docs/results/compressive/lm.json

Reads each run's config.yaml, metrics.csv (last row), eval.json (whole validation
and test splits) and checkpoint (parameter count); prints a markdown table with
each model's test bits relative to the first run's, and writes the rows as JSON.
``--at-batches N`` adds the validation-prefix value every run logged at batch N
(a comparison at equal updates, next to the one at equal time).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from training.run_dir import load_checkpoint, load_config, read_metrics  # noqa: E402
from training.supervised.model import build_model  # noqa: E402
from training.supervised.tasks.base import markdown_table  # noqa: E402

CORE_FIELDS = ("d_model", "n_layers", "mlp_size", "n_m", "n_cm", "compression_rate", "compression", "hidden_size")


def parameters(run: Path, cfg: dict) -> int:
    vocabulary = load_checkpoint(run / "checkpoint.pt")["task"]["vocabulary_size"]
    task = SimpleNamespace(input_kind="token", input_size=vocabulary, output_size=vocabulary)
    return sum(p.numel() for p in build_model(task, cfg).parameters())


def validation_at(metrics: dict, column: str, batches: int) -> float:
    """The validation value logged at ``batches`` (NaN if that row has none)."""
    for done, value in zip(metrics["batches"], metrics[column]):
        if int(done) == batches:
            return value
    return float("nan")


def row(run: Path, at_batches: int | None) -> dict:
    cfg = load_config(run)
    metrics = read_metrics(run)
    evaluation = {r["split"]: r for r in json.loads((run / "eval.json").read_text())["rows"]}
    metric = next(k for k in evaluation["test"] if k.startswith("bits_per_"))
    core = cfg["core"]
    same_updates = {f"val_prefix_{metric}_at_{at_batches}_batches": validation_at(metrics, f"val_{metric}", at_batches)}
    return {
        "core": core["name"],
        "settings": " ".join(f"{k}={core[k]}" for k in CORE_FIELDS if k in core),
        "parameters": parameters(run, cfg),
        "train_s": metrics["time_s"][-1],
        "batches": int(metrics["batches"][-1]),
        "train_tokens": int(metrics["batches"][-1]) * cfg["batch_size"] * cfg["task"]["segment_length"],
        f"valid_{metric}": evaluation["valid"][metric],
        f"test_{metric}": evaluation["test"][metric],
        "test_predictions": evaluation["test"]["predictions"],
        **(same_updates if at_batches else {}),
        "run": run.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write the rows here as JSON")
    parser.add_argument("--at-batches", type=int, help="also give the validation (prefix) value logged at this batch")
    args = parser.parse_args()
    rows = [row(run, args.at_batches) for run in args.runs]
    metric = next(k for k in rows[0] if k.startswith("test_bits_per_"))
    for r in rows:
        r[f"{metric}_vs_first"] = round(r[metric] / rows[0][metric], 4)
    print(markdown_table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

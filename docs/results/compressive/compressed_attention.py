"""How much attention a trained Compressive Transformer puts on its compressed memory (thesis Fig. 6.3's question).

    .venv/bin/python docs/results/compressive/compressed_attention.py runs/compressive/*-lm-compressive_transformer

Runs the checkpoint over the first ``--tokens`` predictions of the test split in
``--streams`` streams, state carried, and prints the mean of the core's
``aux["compressed_attention"]`` (attention mass on compressed slots, averaged over
layers, heads and steps) per segment, skipping the first segments, where a
stream has not yet filled its compressed memory.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from training.run_dir import load_checkpoint  # noqa: E402
from training.supervised.tasks.streaming import evaluation_batches  # noqa: E402
from training.supervised.trainer import setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.run / "checkpoint.pt")
    cfg = dict(checkpoint["config"], device="cpu")
    parts = setup(cfg, checkpoint)
    core = cfg["core"]
    fill = core["n_m"] + core["n_cm"] * core["compression_rate"]  # steps until the compressed memory is full
    segment = cfg["task"]["segment_length"]
    model, masses = parts.model.eval(), []
    state = model.initial_state(args.streams)
    with torch.no_grad():
        for index, batch in enumerate(evaluation_batches(parts.task.splits["test"], args.streams, segment, args.tokens)):
            _, state, aux = model(batch.inputs, state, batch.reset)
            if index * segment >= fill:
                masses.append(float(aux["compressed_attention"]))
    print("| run | compressed slots | mean attention on compressed memory | uniform share | segments |")
    print("|---|---|---|---|---|")
    uniform = core["n_cm"] / (core["n_cm"] + core["n_m"] + 1)
    print(f"| {args.run.name} | {core['n_cm']} (rate {core['compression_rate']}) | {sum(masses) / len(masses):.4f} "
          f"| {uniform:.4f} | {len(masses)} |")


if __name__ == "__main__":
    main()

"""``memrl eval``: run N episodes with a trained agent and summarise the returns."""
from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np

from training.actor import Actor, pooled_success
from training.run_dir import load_checkpoint, resolve_checkpoint


def evaluate(
    checkpoint: str, episodes: int, seed: int, out: str | None = None, num_envs: int = 8,
    record: bool = False, record_path: str | None = None, record_max_steps: int = 1000, greedy: bool = False,
) -> dict:
    """Mean and std of the return over ``episodes`` episodes, success rate, and a per-episode CSV.

    The policy samples its actions, as during training, or with ``greedy`` takes the most
    probable one (arg-max of each action component's logits). Envs run in-process;
    each env's episodes count until ``episodes`` are done in total. With
    ``record`` one more episode (seed ``seed``) is written as an animated GIF
    (default ``<run>/episode.gif``; see evaluation/record.py).
    """
    if episodes <= 0:
        raise ValueError(f"episodes={episodes} must be positive")
    path = resolve_checkpoint(checkpoint)
    payload = load_checkpoint(path)
    cfg = copy.deepcopy(payload["config"])
    cfg["actors"]["envs_per_actor"] = max(1, min(num_envs, episodes))
    cfg["actors"]["unroll_length"] = 50
    cfg["actors"]["decorrelate_steps"] = 0  # every episode runs to its end: no cut episodes to leave out
    actor = Actor(cfg, actor_index=0, seed=seed, greedy=greedy)
    try:
        actor.set_weights(payload["model"], version=0)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit its own config ({str(exc).splitlines()[0][:100]})") from None
    finished: list[dict] = []
    while len(finished) < episodes:
        finished += actor.unroll().episodes
    finished = finished[:episodes]

    csv_path = Path(out) if out else path.parent / "eval.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["episode", "return", "length", "success", "trials"])
        writer.writeheader()
        for i, e in enumerate(finished):
            writer.writerow({"episode": i, **e})
    returns = np.array([e["return"] for e in finished])
    summary = {
        "episodes": len(finished),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": pooled_success(finished),
        "policy": "greedy" if greedy else "sampled",
        "csv": str(csv_path),
    }
    if record:
        from .record import record_episode

        gif_path = Path(record_path) if record_path else path.parent / "episode.gif"
        summary.update(record_episode(payload, gif_path, seed, record_max_steps, greedy))
    return summary

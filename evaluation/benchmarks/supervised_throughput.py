"""``memrl bench supervised_throughput``: training stories (sequences) per second of each core on a
supervised task, side by side in one process (issue 27: the sparse cores on bAbI).

For every model a fresh ``memrl supervised`` setup (``training.supervised.trainer.setup``: the task,
the model and its optimiser) trains on the task's own training batches with ``train_on_batch``, as
``memrl supervised`` does. After ``warmup`` batches the models take turns, one batch each, for
``rounds`` rounds, so load on a shared machine falls on all of them alike; stories/s is
``batch_size`` over each model's median time per batch, and ``vs_<first model>`` is the ratio to the
first model in ``models``.
"""
from __future__ import annotations

import statistics
import time

import torch

from . import benchmark


def _override(key: str, value) -> str:
    """An entry's key as a ``memrl supervised`` override: ``core`` picks the core, a dotted key
    (``model.embedding_size``) is passed as it is, any other key is one of the core's options."""
    return f"{key}={value}" if key == "core" or "." in key else f"core.{key}={value}"


def _setup(cfg, model: dict):
    from training.config import compose
    from training.supervised.trainer import setup

    overrides = [f"task={cfg.task}", f"batch_size={cfg.batch_size}", f"seed={cfg.seed}", "optimizer.name=adam",
                 *[f"task.{k}={v}" for k, v in (cfg.task_options or {}).items()],
                 *[_override(k, v) for k, v in model.items()]]
    return setup(compose("supervised", overrides))


@benchmark("supervised_throughput")
def supervised_throughput(cfg) -> list[dict]:
    from training.supervised.trainer import train_on_batch

    torch.set_num_threads(cfg.threads)
    models = [dict(m) for m in cfg.models]
    parts = [_setup(cfg, m) for m in models]
    times: list[list[float]] = [[] for _ in models]
    for step in range(cfg.warmup + cfg.rounds):
        for i, p in enumerate(parts):
            batch = p.task.train_batch(p.generator, cfg.batch_size)
            start = time.perf_counter()
            train_on_batch(p.model, p.optimizer, p.task, batch, p.model.initial_state(cfg.batch_size), 0, 40.0)
            if step >= cfg.warmup:
                times[i].append(time.perf_counter() - start)
    rows = []
    for model, p, t in zip(models, parts, times):
        per_batch = statistics.median(t)
        rows.append({"core": model["core"], "options": ",".join(f"{k}={v}" for k, v in model.items() if k != "core"),
                     "parameters": sum(x.numel() for x in p.model.parameters()), "batch_size": cfg.batch_size,
                     "s_per_batch": per_batch, "stories_per_s": cfg.batch_size / per_batch})
    for row in rows:
        row[f"vs_{rows[0]['core']}"] = row["stories_per_s"] / rows[0]["stories_per_s"]
    return rows

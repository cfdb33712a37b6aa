"""``memrl bench bloom``: space at a false-positive rate, learned models vs the optimal Bloom filter (thesis 5.6).

For every task (``configs/task/<task>.yaml``), set size n and model (a core
plus config overrides), one ``memrl supervised`` run trains the model on sets
of n (Algorithm 3) and measures, over ``eval_queries`` negative queries, its
total space at the target rate alpha: the state at alpha/2 (at 32, 16 or
8 bits per value, whichever is smallest) plus per-set backup Bloom filters
for its false negatives at alpha/2, so the combination has zero false
negatives (thesis 5.5). For each (task, n, core) the smallest total over the
swept sizes is compared with the optimal Bloom filter, m*(n, alpha) =
n log2(1/alpha) / ln 2 bits, as a ratio (> 1: the model is smaller).

Rows: ``section=run`` for each training run (its best precision) and
``section=best`` for each (task, n, core). A PNG plots bits vs set size per
task. The trained runs stay in ``run_root`` (their metrics, checkpoints and
full evaluation tables).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from memory_cores.bloom_filter import optimal_size_bits

from . import benchmark


@benchmark("bloom")
def run(cfg) -> list[dict[str, Any]]:
    from training.config import compose
    from training.supervised.bloom import run_bloom
    from training.supervised.tasks.bloom import build_bloom_task

    models = [dict(m) for m in OmegaConf.to_container(cfg.models, resolve=True)]
    for model in models:
        if "core" not in model:
            raise ValueError(f"each entry of models needs a core, e.g. {{core: neural_bloom, memory_slots: 4}}; got {model}")
    rows, pools = [], {}
    for task_name in cfg.tasks:
        for size in cfg.set_sizes:
            for model in models:
                overrides = training_overrides(cfg, task_name, int(size), model)
                run_cfg = compose("supervised", overrides)
                task = build_bloom_task(run_cfg["task"], pools.get(pool_key(run_cfg["task"])))
                pools[pool_key(run_cfg["task"])] = task.pool  # loaded once per data source
                started = time.time()
                result = run_bloom(run_cfg, quiet=True, task=task)
                best = min(result["eval"], key=lambda r: r["total_bits"])
                rows.append({"section": "run", "task": task_name, "core": model["core"], "size": size_label(model),
                             "training_batches": result["row"].get("batches"), "seconds": round(time.time() - started, 1),
                             "validation_accuracy": result["row"].get("validation_accuracy"), **best,
                             "run_dir": str(result["run_dir"])})
                print(f"bench bloom: {task_name} n={size} {model['core']} {size_label(model)}: "
                      f"{best['total_bits']:.0f} bits vs Bloom {best['bloom_bits']:.0f}", flush=True)
    rows += best_rows(rows)
    if cfg.plot:
        plot(rows, Path(cfg.plot), float(cfg.target_false_positive_rate))
    return rows


def training_overrides(cfg, task_name: str, size: int, model: dict[str, Any]) -> list[str]:
    core = model["core"]
    return [f"task={task_name}", f"core={core}",
            *[f"core.{k}={_value(v)}" for k, v in model.items() if k != "core"],
            f"task.set_size_min={size}", f"task.set_size_max={size}", f"task.eval_set_sizes=[{size}]",
            f"task.eval_queries={int(cfg.eval_queries)}",
            f"task.target_false_positive_rate={float(cfg.target_false_positive_rate)}",
            f"run_root={cfg.run_root}", f"name='bench-{task_name}-n{size}-{core}-{size_label(model)}'",
            "progress=false", f"seed={int(cfg.seed)}", *cfg.overrides]


def _value(value) -> str:
    return "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, (list, tuple)) else str(value)


def size_label(model: dict[str, Any]) -> str:
    return ",".join(f"{k}={_value(v)}" for k, v in model.items() if k != "core") or "default"


def pool_key(task_cfg: dict[str, Any]) -> tuple:
    return (task_cfg["distribution"], tuple(task_cfg["paths"]), task_cfg["max_length"])


def best_rows(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, set size, core): the run with the smallest total space, as a ratio to the Bloom filter."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in run_rows:
        key = (row["task"], row["set_size"], row["core"])
        if key not in groups or row["total_bits"] < groups[key]["total_bits"]:
            groups[key] = row
    return [{"section": "best", "task": r["task"], "set_size": r["set_size"], "core": r["core"], "size": r["size"],
             "precision_bits": r["precision_bits"], "total_bits": r["total_bits"], "bloom_bits": r["bloom_bits"],
             "bloom_over_total": r["bloom_over_total"]} for r in groups.values()]


def plot(rows: list[dict[str, Any]], path: Path, rate: float) -> None:
    """Bits vs set size per task: the optimal Bloom filter and each core's best total space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = [r for r in rows if r["section"] == "best"]
    tasks = sorted({r["task"] for r in best})
    if not tasks:
        return
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        mine = [r for r in best if r["task"] == task]
        sizes = sorted({r["set_size"] for r in mine})
        grid = [sizes[0] * (sizes[-1] / sizes[0]) ** (i / 50) for i in range(51)] if len(sizes) > 1 else sizes
        axis.plot(grid, [optimal_size_bits(n, rate) for n in grid], "k--", label="Bloom filter (optimal)")
        for core in sorted({r["core"] for r in mine}):
            points = sorted((r["set_size"], r["total_bits"]) for r in mine if r["core"] == core)
            axis.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"{core} (+ backup)")
        axis.set_xscale("log" if len(sizes) > 1 else "linear")
        axis.set_yscale("log")
        axis.set_xlabel("set size n")
        axis.set_ylabel(f"bits at {rate:.0%} false positives")
        axis.set_title(task)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

"""The bodies of ``memrl supervised`` and of ``memrl eval`` for supervised checkpoints.

    memrl supervised task=associative_recall core=sam max_time_s=600
    memrl supervised resume=runs/<run> max_batches=20000
    memrl eval checkpoint=runs/<run> eval.levels=[64,128,256]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from ..config import apply_overrides, compose_or_resume, override_value
from ..run_dir import CHECKPOINT, CheckpointError, load_checkpoint, new_run_dir, resolve_checkpoint
from .report import show_result, write_result
from .trainer import make_runner, setup, train, use_weights

KIND = "supervised"


def run_supervised(overrides: list[str]) -> int:
    cfg, run_dir, checkpoint = compose_or_resume(overrides, "supervised", ("core", "task"), "core and task",
                                                 load=_load_supervised)
    if cfg["task"].get("name") == "bloom":  # set membership has its own loop (Algorithm 3)
        from .bloom import run_bloom

        run_bloom(cfg, run_dir, checkpoint)
        return 0
    parts = setup(cfg, checkpoint)  # everything is checked before a folder exists
    run_dir = run_dir or new_run_dir(cfg, f"{cfg['core']['name']}-{cfg['task']['name']}")
    print(f"run folder: {run_dir}", flush=True)
    train(cfg, run_dir, parts, checkpoint)
    if cfg["eval"]["at_end"]:
        result = evaluate(parts, cfg["eval"], lambda: load_checkpoint(run_dir / CHECKPOINT))
        write_result(result, run_dir / "eval")
        print(result["markdown"])
    print(f"done; checkpoint: {run_dir / 'checkpoint.pt'}")
    return 0


def is_supervised_checkpoint(checkpoint: str | None) -> bool:
    """True when ``checkpoint`` (file or run folder) was written by ``memrl supervised``."""
    if not checkpoint:
        return False
    try:
        return load_checkpoint(checkpoint)["config"].get("kind") == KIND
    except (CheckpointError, AttributeError):
        return False  # let the caller's own loader report the problem


def evaluate_checkpoint(overrides: list[str]) -> int:
    """``memrl eval checkpoint=<run>`` for a supervised run; other overrides apply to its saved config."""
    path = resolve_checkpoint(override_value(overrides, "checkpoint"))
    checkpoint = _load_supervised(path)
    rest = [o for o in overrides if not o.startswith("checkpoint=")]
    cfg = apply_overrides(checkpoint["config"], rest)
    out = Path(cfg["eval"]["out"]) if cfg["eval"]["out"] else path.parent / "eval"
    if cfg["task"].get("name") == "bloom":  # the space table of a set-membership model
        from .bloom import evaluate_bloom, setup_bloom

        show_result(evaluate_bloom(setup_bloom(cfg, checkpoint)), out)
    else:
        show_result(evaluate(setup(cfg, checkpoint), cfg["eval"], lambda: checkpoint), out)
    return 0


def evaluate(parts, eval_cfg: dict[str, Any], checkpoint: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The task's evaluation of the trained model (generalisation table, test-error table).

    ``eval.weights=best`` first loads the best-validation weights from ``checkpoint()``
    and says which they are in the result. A run with ``optimizer.ema_decay`` is evaluated
    with its moving average of the weights (the last, or the best-validation one), and says so.
    """
    model = parts.evaluated
    chosen = use_weights(model, checkpoint(), "best") if eval_cfg.get("weights", "last") == "best" else None
    model.eval()
    with torch.no_grad():
        result = parts.task.evaluate(make_runner(model, parts.device, parts.task.stream), eval_cfg)
    notes = []
    if chosen is not None:
        result["weights"] = chosen
        notes.append(f"Weights: the best validation ({chosen['metric']} {chosen['value']:.4g} at batch {chosen['batches']:,}).")
    if parts.averaged is not None:
        result["ema_decay"] = parts.ema_decay
        notes.append(f"Weights: their exponential moving average (decay {parts.ema_decay}).")
    if notes:
        result["markdown"] += "\n\n" + " ".join(notes)
    return result


def _load_supervised(path: Path) -> dict[str, Any]:
    checkpoint = load_checkpoint(path)
    if checkpoint["config"].get("kind") != KIND:
        raise CheckpointError(f"checkpoint {path} is not from `memrl supervised`; use `memrl train resume=` for RL runs")
    return checkpoint

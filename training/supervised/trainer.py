"""``memrl supervised``: train any registered core on a supervised sequence task.

``main(overrides)`` composes ``configs/supervised.yaml`` (or reloads a run for
``resume=``), builds everything once so bad input fails before a run folder
exists, then ``train`` runs the loop, readable top to bottom:

1. take a batch from the task (algorithmic: a curriculum level per batch),
2. run the model over it in segments of ``bptt`` steps (0: the whole
   sequence), one optimiser step per segment, the core state carried and
   detached between segments, and between batches too when the task is a stream,
3. report the batch to the task (the curriculum may double its level),
4. log, validate, checkpoint at their intervals; evaluate at the end.

One process, one device; data sampling uses its own seeded generator, so a run
with the same config is reproducible on the same machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from memory_cores import auxiliary_loss

from ..run_loop import Run, StopClock, make_optimizer, resolve_device, restore_training_state
from .model import SequenceModel, build_model
from .tasks import Batch, Task, build_task
from .tasks.base import loss, sum_scores


MISMATCH = "checkpoint does not fit its own config"  # the error when a checkpoint's weights do not load


@dataclass
class Setup:
    """Everything a run needs, built (and checked) before any file is written."""

    task: Task  # Bloom: a BloomTask
    model: SequenceModel  # Bloom: a SetModel
    optimizer: torch.optim.Optimizer
    device: torch.device
    generator: torch.Generator  # the training data stream's randomness
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None  # optimizer.plateau.patience set
    averaged: AveragedModel | None = None  # optimizer.ema_decay set: the moving average of the weights
    ema_decay: float | None = None

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model that validation, best-weight selection and evaluation use: the average when kept."""
        return self.averaged.module if self.averaged is not None else self.model


def setup(cfg: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Setup:
    device = start_process(cfg)
    task = build_task(cfg["task"], cfg["seed"])
    if checkpoint is not None:
        task.load_state_dict(checkpoint["task"])  # before the model: bAbI's vocabulary sets its sizes
    model = build_model(task, cfg).to(device)
    optimizer = make_optimizer(model.parameters(), cfg["optimizer"])
    scheduler = make_plateau_scheduler(optimizer, cfg["optimizer"], task.headline_mode())
    averaged = make_weight_average(model, cfg["optimizer"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    if checkpoint is not None:
        restore_training_state(checkpoint, model, optimizer, MISMATCH, generator)
        if scheduler is not None and "scheduler" in checkpoint:
            scheduler.load_state_dict(checkpoint["scheduler"])
        if averaged is not None and "averaged" in checkpoint:
            averaged.load_state_dict(checkpoint["averaged"])
    return Setup(task, model, optimizer, device, generator, scheduler, averaged, cfg["optimizer"].get("ema_decay"))


def start_process(cfg: dict[str, Any]) -> torch.device:
    """Check the trainer's fields, then set the thread count and torch seed; the device to train on."""
    check_config(cfg)
    device = resolve_device(cfg["device"])
    if cfg["threads"] is not None:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    return device


def check_config(cfg: dict[str, Any]) -> None:
    """One-line ValueErrors for the trainer's own fields (tasks and cores check theirs)."""
    positive = {"batch_size": cfg["batch_size"], "validation.interval_batches": cfg["validation"]["interval_batches"],
                "validation.batch_size": cfg["validation"]["batch_size"]}
    for key, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}={value} must be a positive integer")
    if cfg["threads"] is not None and (not isinstance(cfg["threads"], int) or cfg["threads"] < 1):
        raise ValueError(f"threads={cfg['threads']} must be a positive integer (null: torch's default)")
    if cfg["max_batches"] is None and cfg["max_time_s"] is None:
        raise ValueError("set max_batches=<n> or max_time_s=<seconds> (both null would train forever)")
    if not isinstance(cfg["bptt"], int) or cfg["bptt"] < 0:
        raise ValueError(f"bptt={cfg['bptt']} must be an integer >= 0 (0: backprop through whole sequences)")
    if cfg["optimizer"]["max_grad_norm"] is not None and cfg["optimizer"]["max_grad_norm"] <= 0:
        raise ValueError(f"optimizer.max_grad_norm={cfg['optimizer']['max_grad_norm']} must be positive (null: no clipping)")
    if cfg["eval"].get("weights", "last") not in ("last", "best"):
        raise ValueError(f"eval.weights={cfg['eval']['weights']!r} is not known; use last or best")


def make_plateau_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any],
                           mode: str) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Decay the rate by ``factor`` after ``patience`` validations without a new best (None: constant rate)."""
    plateau = cfg.get("plateau") or {}
    if plateau.get("patience") is None:
        return None
    if not isinstance(plateau["patience"], int) or plateau["patience"] < 0:
        raise ValueError(f"optimizer.plateau.patience={plateau['patience']} must be an integer >= 0 (null: constant rate)")
    if not 0 < plateau["factor"] < 1:
        raise ValueError(f"optimizer.plateau.factor={plateau['factor']} must be in (0, 1)")
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=plateau["factor"],
                                                      patience=plateau["patience"],
                                                      min_lr=plateau["min_learning_rate"])


def make_weight_average(model: torch.nn.Module, cfg: dict[str, Any]) -> AveragedModel | None:
    """An exponential moving average of the weights, updated after every batch (None: ``ema_decay`` null).

    Evaluating the average rather than the last weights smooths out the noise of the last updates,
    which on small datasets moves validation error by a point or more from one validation to the next.
    """
    decay = cfg.get("ema_decay")  # runs saved before the option have none
    if decay is None:
        return None
    if not isinstance(decay, float) or not 0 < decay < 1:
        raise ValueError(f"optimizer.ema_decay={decay} must be a number in (0, 1), e.g. 0.999 (null: no average)")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# -- one batch ----------------------------------------------------------------------------------
def train_on_batch(model: SequenceModel, optimizer: torch.optim.Optimizer, task: Task, batch: Batch,
                   state: TensorDict, bptt: int, max_grad_norm: float | None):
    """Truncated BPTT over ``batch``: one optimiser step per segment of ``bptt`` steps (0: one segment).

    The state is carried between segments and detached, so gradients stop at
    segment boundaries while the forward pass sees the whole sequence.
    Returns (logits [T, B, O] detached, final state detached, stats).
    """
    segment = bptt or batch.length
    logits_parts, grad_norms = [], []
    for start in range(0, batch.length, segment):
        part = batch.segment(start, start + segment)
        logits, state, aux = model(part.inputs, state, part.reset)
        objective = loss(task, logits, part)
        extra = auxiliary_loss(aux)
        if extra is not None:
            objective = objective + extra
        if extra is not None or bool(part.mask.any()):  # a segment with nothing to learn takes no step
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            grad_norms.append(clip_gradients(model, max_grad_norm))
            optimizer.step()
        state = state.detach()
        logits_parts.append(logits.detach())
    stats = {"updates": len(grad_norms), "grad_norm": max(grad_norms) if grad_norms else 0.0}
    return torch.cat(logits_parts), state, stats


def clip_gradients(model: torch.nn.Module, max_grad_norm: float | None) -> float:
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm or float("inf"))
    return float(norm)


@torch.no_grad()
def run_model(model: SequenceModel, batch: Batch, device: torch.device) -> torch.Tensor:
    """Logits [T, B, O] of one whole batch from a fresh state, without gradients."""
    batch = batch.to(device)
    state = model.initial_state(batch.batch_size, device)
    logits, _, _ = model(batch.inputs, state, batch.reset)
    return logits


def make_runner(model: SequenceModel, device: torch.device, carry_state: bool):
    """``batch -> logits [T, B, O]`` on the CPU, without gradients.

    ``carry_state=False``: every batch from a fresh state (``run_model``).
    ``carry_state=True`` (a stream task): each batch continues from the state the
    previous batch left, so consecutive segments of one stream read as one
    sequence (the task marks where a stream starts with ``reset``).
    """
    if not carry_state:
        return lambda batch: run_model(model, batch, device).cpu()
    state = None

    @torch.no_grad()
    def run(batch: Batch) -> torch.Tensor:
        nonlocal state
        batch = batch.to(device)
        if state is None or state.batch_size[0] != batch.batch_size:
            state = model.initial_state(batch.batch_size, device)
        logits, state, _ = model(batch.inputs, state, batch.reset)
        return logits.cpu()

    return run


def use_weights(model: torch.nn.Module, checkpoint: dict[str, Any], which: str) -> dict[str, Any] | None:
    """Load the checkpoint's best-validation weights for ``which="best"``; returns their record (None for "last")."""
    if which != "best":
        return None
    if "best" not in checkpoint:
        raise ValueError("the checkpoint holds no best-validation weights (trained with eval.weights=last); "
                         "use eval.weights=last")
    model.load_state_dict(checkpoint["best"]["model"])
    return {k: v for k, v in checkpoint["best"].items() if k != "model"}


def validate(parts: Setup, batch_size: int) -> dict[str, float]:
    model = parts.evaluated
    model.eval()
    sums = sum_scores(parts.task, make_runner(model, parts.device, parts.task.stream),
                      parts.task.validation_batches(batch_size))
    model.train()
    return {f"val_{k}": v for k, v in parts.task.summarise(sums).items()}


# -- the loop -----------------------------------------------------------------------------------
def train(cfg: dict[str, Any], run_dir: Path, parts: Setup, checkpoint: dict[str, Any] | None = None,
          quiet: bool = False) -> dict[str, float]:
    """Train until ``max_batches`` batches or ``max_time_s`` seconds; returns the last logged row."""
    task, model, optimizer, device = parts.task, parts.model, parts.optimizer, parts.device
    counters = {"batches": 0, "updates": 0, "sequences": 0, "seconds": 0.0}
    keep_best = cfg["eval"].get("weights", "last") == "best"
    best: dict[str, Any] | None = None  # the best validation so far: batches, metric, value, model weights
    if checkpoint is not None:
        counters.update(checkpoint["counters"])
        best = checkpoint.get("best")
    headline = f"val_{task.headline()}"
    sign = 1.0 if task.headline_mode() == "max" else -1.0
    no_validation = {f"val_{k}": v for k, v in task.summarise({}).items()}  # NaN columns on rows without one
    state = None

    def payload() -> dict[str, Any]:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": cfg, "task": task.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "data": parts.generator.get_state()},
            **({"scheduler": parts.scheduler.state_dict()} if parts.scheduler is not None else {}),
            **({"best": best} if best is not None else {}),
            **({"averaged": parts.averaged.state_dict()} if parts.averaged is not None else {}),
        }

    run = Run(run_dir, counters, StopClock("batches", cfg["max_batches"], cfg["max_time_s"]), cfg["checkpoint"], payload,
              lambda row: _progress_line(task, row), log_interval_s=cfg["log"]["interval_s"], bar=cfg["progress"],
              quiet=quiet, tensorboard=cfg["tensorboard"])
    model.train()
    with run:
        done = run.done()
        while not done:
            batch = task.train_batch(parts.generator, cfg["batch_size"]).to(device)
            if state is None or not task.stream or state.batch_size[0] != batch.batch_size:
                state = model.initial_state(batch.batch_size, device)
            logits, state, stats = train_on_batch(model, optimizer, task, batch, state, cfg["bptt"],
                                                  cfg["optimizer"]["max_grad_norm"])
            if parts.averaged is not None:
                parts.averaged.update_parameters(model)
            sums = task.score(logits, batch)
            summary = task.summarise(sums)
            task.observe(summary)
            run.window.add(sums)
            run.window.peak("grad_norm", stats["grad_norm"])
            counters["batches"] += 1
            counters["updates"] += stats["updates"]
            counters["sequences"] += batch.batch_size
            done = run.step(1, _postfix(task, summary))

            validated = counters["batches"] % cfg["validation"]["interval_batches"] == 0 or done
            validation = no_validation
            if validated:
                validation = validate(parts, cfg["validation"]["batch_size"])
                value = validation[headline]
                if parts.scheduler is not None:
                    parts.scheduler.step(value)
                if keep_best and value == value and (best is None or sign * (value - best["value"]) > 0):
                    best = {"batches": counters["batches"], "metric": headline, "value": value,
                            "model": {k: v.detach().cpu().clone() for k, v in parts.evaluated.state_dict().items()}}
            if run.log_due(done or validated):  # every validation gets its row
                window = run.window
                run.log({"batches": counters["batches"], "updates": counters["updates"],
                         "sequences": counters["sequences"], "time_s": round(run.seconds(), 2),
                         "batches_per_s": window.per_second(window.steps), "grad_norm": window.peaks.get("grad_norm", 0.0),
                         "learning_rate": optimizer.param_groups[0]["lr"],
                         **task.summarise(window.sums), **task.progress(), **validation})
            run.checkpoint_if_due(done)
    return run.last_row


def _postfix(task: Task, summary: dict[str, float]) -> dict[str, Any]:
    loss_key = "loss_bits_per_seq" if task.output_kind == "bits" else "loss"
    return {"loss": f"{summary[loss_key]:.3f}", task.headline(): f"{summary[task.headline()]:.3f}", **task.progress()}


def _progress_line(task: Task, row: dict[str, float]) -> str:
    fields = " | ".join(f"{key} {value}" for key, value in _postfix(task, row).items())
    return f"batch {row['batches']:>8,} | {fields} | {row['time_s']:6.0f} s"

"""The bookkeeping every training loop shares: stop clock, metrics window, log rows, progress, checkpoints, signals.

The four loops (``impala.train``, ``rllib_backend.train``, ``supervised.trainer.train``,
``supervised.bloom.train_bloom``) keep only their own work (the actor pool, ``algo.train()``, the
batches, the validation) and hand the rest to a ``Run``::

    with Run(run_dir, counters, StopClock("batches", 1000), cfg["checkpoint"], payload, line, log_interval_s=5) as run:
        done = run.done()
        while not done:
            ...one batch...; counters["batches"] += 1; run.window.add(sums)
            done = run.step(1)                  # the bar; the clock's verdict
            if run.log_due(done):
                run.log({"batches": counters["batches"], "time_s": run.seconds(), **run.window.sums})
            run.checkpoint_if_due(done)
    # SIGINT/SIGTERM inside: a checkpoint, then KeyboardInterrupt; the end: a checkpoint if none was written

``counters`` is the loop's own dict of totals, saved in every checkpoint; the run keeps its
``"seconds"`` entry: training time, the runs it resumes included.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from .run_dir import CHECKPOINT, CheckpointError, MetricsLogger, save_run_checkpoint


def resolve_device(name: str) -> torch.device:
    """``device=auto`` (cuda if available), ``cpu``, ``cuda`` or ``cuda:N``; a one-line error otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None


def make_optimizer(params, section: dict[str, Any], name_key: str = "optimizer.name") -> torch.optim.Optimizer:
    """The optimiser a config section names at ``name_key`` (``learner.optimizer``, ``optimizer.name``):
    adam (AdamW when the section has ``weight_decay``; AdamW at 0 is Adam) or rmsprop (alpha 0.99, as IMPALA's)."""
    where, _, key = name_key.rpartition(".")
    rate, epsilon, weight_decay = section["learning_rate"], section["epsilon"], section.get("weight_decay")
    if not rate > 0:
        raise ValueError(f"{where}.learning_rate={rate} must be positive")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"{where}.weight_decay={weight_decay} must be >= 0")
    if section[key] == "adam" and weight_decay is None:
        return torch.optim.Adam(params, lr=rate, eps=epsilon)
    if section[key] == "adam":
        return torch.optim.AdamW(params, lr=rate, eps=epsilon, weight_decay=weight_decay)
    if section[key] == "rmsprop":
        return torch.optim.RMSprop(params, lr=rate, eps=epsilon, momentum=section.get("momentum", 0.0), alpha=0.99,
                                   weight_decay=weight_decay or 0.0)
    raise ValueError(f"{name_key}={section[key]!r} is not known; use adam or rmsprop")


def restore_training_state(checkpoint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           mismatch: str, generator: torch.Generator | None = None) -> None:
    """Weights, optimiser and the random streams (torch's; ``generator``'s when given) from a checkpoint, so a
    resumed run continues exactly; a one-line ``CheckpointError`` "<mismatch> (<why>)" when they do not fit."""
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:  # another core or other sizes than the config says
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{mismatch} ({' '.join(line.strip() for line in first[:2])[:240] or type(exc).__name__})") from None
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["data"])


@dataclass
class StopClock:
    """A run ends at ``counters[counter] >= limit`` or after ``max_seconds`` of training (None: no such limit):
    the run's whole training time, or with ``seconds_from_first_step`` this process's since its first step."""

    counter: str  # "frames" or "batches"
    limit: int | None
    max_seconds: float | None = None
    seconds_from_first_step: bool = False

    def done(self, counters: dict[str, Any], run: "Run") -> bool:
        if self.limit is not None and counters[self.counter] >= self.limit:
            return True
        if self.max_seconds is None:
            return False
        if self.seconds_from_first_step:
            return run.first_step is not None and time.time() - run.first_step >= self.max_seconds
        return run.seconds() >= self.max_seconds


class MetricsWindow:
    """What happened since the last logged row: summed values, the peaks of others, steps, seconds."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self.steps = 0
        self.started = time.time()

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def peak(self, key: str, value: float) -> None:
        self.peaks[key] = max(self.peaks.get(key, value), value)

    def per_second(self, amount: float) -> float:
        return amount / max(time.time() - self.started, 1e-9)


class Checkpointer:
    """``checkpoint.pt`` every ``interval_s`` seconds (0: every step), written atomically; ``keep_last`` > 0
    also keeps the last K as ``checkpoint-<counter>.pt``, ``keep_best`` the one with the highest score so far
    as ``checkpoint-best.pt`` (the score in ``counters["best_return"]``)."""

    def __init__(self, run_dir: Path, interval_s: float, keep_last: int = 0, keep_best: bool = False, counter="frames"):
        self.run_dir, self.interval_s, self.keep_last, self.keep_best = Path(run_dir), interval_s, keep_last, keep_best
        self.counter = counter  # names the kept copies
        self.last, self.saved = time.time(), False

    def save(self, payload: dict[str, Any], counters: dict[str, Any], score: float = math.nan) -> Path:
        best = self.keep_best and math.isfinite(score) and score > counters.get("best_return", -math.inf)
        if best:
            counters["best_return"] = score
        path = save_run_checkpoint(self.run_dir, {**payload, "counters": dict(counters)}, self.keep_last, best, self.counter)
        self.last, self.saved = time.time(), True
        return path


class Run:
    """One training run's shared bookkeeping, as a context manager (see the module docstring).

    Args:
        counters: the loop's totals (restored from the checkpoint on resume).
        clock: when to stop.
        checkpoint: the config's ``checkpoint`` section: ``interval_s``; ``keep_last``, ``keep_best`` where given.
        payload: the checkpoint's content (model, optimiser, config, rng ...); the run adds ``counters``.
        line: a logged row as a progress line, printed where there is no bar (and not ``quiet``).
        log_interval_s: seconds between metrics.csv rows (0: every step; always one at the end).
        score: what ``checkpoint.keep_best`` ranks by (e.g. the mean return).
        bar: a tqdm bar over the clock's counter instead of lines.
    """

    def __init__(self, run_dir: Path, counters: dict[str, Any], clock: StopClock, checkpoint: dict[str, Any],
                 payload: Callable[[], dict[str, Any]], line: Callable[[dict[str, float]], str], *,
                 log_interval_s: float, score: Callable[[], float] | None = None, bar: bool = False, quiet: bool = False,
                 tensorboard: bool = True):
        self.run_dir, self.counters, self.clock, self.payload, self.score = Path(run_dir), counters, clock, payload, score
        self.log_interval_s = log_interval_s
        self.checkpointer = Checkpointer(run_dir, checkpoint["interval_s"], checkpoint.get("keep_last", 0),
                                         checkpoint.get("keep_best", False), clock.counter)
        self.line, self.quiet = line, quiet
        self.bar = tqdm(total=clock.limit, initial=counters[clock.counter], unit=clock.counter, dynamic_ncols=True,
                        mininterval=1.0, disable=quiet or not bar)
        self.started = time.time() - counters.setdefault("seconds", 0.0)
        self.first_step: float | None = None
        self.window, self.last_row = MetricsWindow(), {}
        self.logger = MetricsLogger(run_dir, tensorboard=tensorboard, counter=clock.counter, resume_at=counters[clock.counter])
        self.signals = stop_on_signals()

    def __enter__(self) -> "Run":
        self.signals.__enter__()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is KeyboardInterrupt and self.first_step is not None:
                self.save()  # Ctrl-C or SIGTERM keeps the work done so far; `resume=` continues it
                print(f"interrupted; checkpoint saved: {self.run_dir / CHECKPOINT}", flush=True)
            elif kind is None and not self.checkpointer.saved:
                self.save()  # e.g. a resumed run that had already finished still leaves its checkpoint
        finally:
            self.signals.__exit__(None, None, None)
            self.bar.close()
            self.logger.close()

    def seconds(self) -> float:
        """Training seconds of the run so far, the runs it resumes included."""
        return time.time() - self.started

    def done(self) -> bool:
        return self.clock.done(self.counters, self)

    def step(self, amount: int = 1, postfix: dict[str, Any] | None = None) -> bool:
        """After each step (``amount`` of the clock's counter): the bar (and its ``postfix``); returns ``done()``."""
        self.first_step = self.first_step or time.time()
        self.window.steps += 1
        self.bar.update(amount)
        if postfix is not None:
            self.bar.set_postfix(postfix, refresh=False)
        return self.done()

    def log_due(self, force: bool = False) -> bool:
        return force or time.time() - self.window.started >= self.log_interval_s

    def log(self, row: dict[str, float]) -> None:
        """A row to metrics.csv and TensorBoard (at the clock's counter) and the progress line; a fresh window."""
        self.logger.log(row, self.counters[self.clock.counter])
        if self.bar.disable and not self.quiet:
            print(self.line(row), flush=True)
        self.last_row, self.window = row, MetricsWindow()

    def checkpoint_if_due(self, force: bool = False) -> None:
        if force or time.time() - self.checkpointer.last >= self.checkpointer.interval_s:
            self.save()

    def save(self) -> Path:
        self.counters["seconds"] = self.seconds()
        return self.checkpointer.save(self.payload(), self.counters, self.score() if self.score else math.nan)


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM (a cluster scheduler, `kill`) stops as Ctrl-C does (a KeyboardInterrupt: training saves a
    checkpoint, the CLI exits 130). SIGINT gets Python's handler back because a shell starts background
    jobs with SIGINT ignored. Handlers are restored afterwards; off the main thread nothing is changed."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be set there
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

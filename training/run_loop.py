"""The bookkeeping every training loop shares: stop clock, metrics window, log rows, progress, checkpoints, signals.

The four loops (IMPALA ``impala.train``, RLlib ``rllib_backend.train``, the sequence trainer
``supervised.trainer.train`` and Bloom's ``supervised.bloom.train_bloom``) keep only their own work
(the actor pool, ``algo.train()``, the batches, the validation) and hand the rest to a ``Run``::

    run = Run(run_dir, counters, StopClock("batches", limit=1000), log_interval_s=5,
              checkpointer=Checkpointer(run_dir, interval_s=60), payload=lambda: {"model": ...})
    with run:                                   # SIGTERM/SIGINT -> checkpoint, then KeyboardInterrupt
        done = run.done()
        while not done:
            ...one batch...; counters["batches"] += 1; run.window.add(sums)
            done = run.step(1)                  # progress bar; the clock's verdict
            if run.log_due(done):
                run.log({"batches": ..., "time_s": run.seconds(), **run.window.sums})
            run.checkpoint_if_due(done)
    # leaving the block: a final checkpoint if none was written, the logger and the bar closed

``counters`` is the loop's own dict of totals (saved in every checkpoint); the run keeps its
``"seconds"`` entry: training time including the time of the runs it resumes.
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

from .run_dir import CHECKPOINT, MetricsLogger, save_run_checkpoint


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


def make_optimizer(params, name: str, learning_rate: float, epsilon: float, momentum: float = 0.0,
                   weight_decay: float | None = None, name_key: str = "optimizer.name") -> torch.optim.Optimizer:
    """Adam (AdamW when ``weight_decay`` is given; AdamW at 0 is Adam) or RMSprop (alpha 0.99, as IMPALA's).

    ``name_key`` is where the config sets ``name`` (``learner.optimizer``, ``optimizer.name``), for the one-line errors.
    """
    section = name_key.rpartition(".")[0]
    if not learning_rate > 0:
        raise ValueError(f"{section}.learning_rate={learning_rate} must be positive")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"{section}.weight_decay={weight_decay} must be >= 0")
    if name == "adam" and weight_decay is None:
        return torch.optim.Adam(params, lr=learning_rate, eps=epsilon)
    if name == "adam":
        return torch.optim.AdamW(params, lr=learning_rate, eps=epsilon, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, eps=epsilon, momentum=momentum, alpha=0.99,
                                   weight_decay=weight_decay or 0.0)
    raise ValueError(f"{name_key}={name!r} is not known; use adam or rmsprop")


@dataclass
class StopClock:
    """When a run ends: ``counters[counter] >= limit``, or ``max_seconds`` of training.

    ``max_seconds`` counts the run's whole training time (resumed runs included), or with
    ``seconds_from_first_step`` only this process's time since its first step (start-up excluded).
    None leaves a limit out.
    """

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
        self.restart()

    def restart(self) -> None:
        self.sums: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self.steps = 0
        self.started = time.time()

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def peak(self, key: str, value: float) -> None:
        self.peaks[key] = max(self.peaks.get(key, value), value)

    def per_second(self, amount: float, now: float | None = None) -> float:
        return amount / max((now or time.time()) - self.started, 1e-9)


class Checkpointer:
    """``checkpoint.pt`` every ``interval_s`` seconds (0: every step) and at the end, written atomically;
    ``keep_last`` > 0 also keeps the last K as ``checkpoint-<frames>.pt``, ``keep_best`` the one with the
    highest score so far as ``checkpoint-best.pt`` (the score kept in ``counters["best_<score_name>"]``).
    """

    def __init__(self, run_dir: Path, interval_s: float, keep_last: int = 0, keep_best: bool = False,
                 score_name: str = "return"):
        self.run_dir, self.interval_s = Path(run_dir), interval_s
        self.keep_last, self.keep_best, self.best_key = keep_last, keep_best, f"best_{score_name}"
        self.last = time.time()
        self.saved = False

    @classmethod
    def from_config(cls, run_dir: Path, section: dict[str, Any]) -> "Checkpointer":
        """From a config's ``checkpoint`` section (``interval_s``; ``keep_last``, ``keep_best`` where it has them)."""
        return cls(run_dir, section["interval_s"], section.get("keep_last", 0), section.get("keep_best", False))

    def due(self, now: float) -> bool:
        return now - self.last >= self.interval_s

    def save(self, payload: dict[str, Any], counters: dict[str, Any], score: float = math.nan) -> Path:
        best = self.keep_best and math.isfinite(score) and score > counters.get(self.best_key, -math.inf)
        if best:
            counters[self.best_key] = score
        path = save_run_checkpoint(self.run_dir, {**payload, "counters": dict(counters)}, self.keep_last, best)
        self.last, self.saved = time.time(), True
        return path


class Progress:
    """A tqdm bar over the clock's counter where one fits (``bar=True`` and a limit), else a printed line per
    logged row (``line(row)``); nothing when ``quiet``."""

    def __init__(self, line: Callable[[dict[str, float]], str], total: int | None = None, initial: int = 0,
                 unit: str = "batch", bar: bool = False, quiet: bool = False):
        self.line, self.quiet = line, quiet
        self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, mininterval=1.0,
                        disable=quiet or not bar)

    def step(self, amount: int, postfix: dict[str, Any] | None = None) -> None:
        self.bar.update(amount)
        if postfix is not None:
            self.bar.set_postfix(postfix, refresh=False)

    def row(self, row: dict[str, float]) -> None:
        if self.bar.disable and not self.quiet:
            print(self.line(row), flush=True)

    def close(self) -> None:
        self.bar.close()


class Run:
    """One training run's shared bookkeeping; a context manager (see the module docstring).

    Args:
        counters: the loop's totals, restored from a checkpoint on resume; ``"seconds"`` is kept here.
        clock: when to stop.
        log_interval_s: seconds between metrics.csv rows (0: after every step; always one at the end).
        checkpointer: when and how to write checkpoints.
        payload: the checkpoint's content (model, optimizer, config, rng ...); the run adds ``counters``.
        score: the value ``checkpointer.keep_best`` ranks checkpoints by (e.g. the mean return).
        progress: the bar or progress lines.
        on_log: called with each logged row (``memrl bench soak`` samples memory there).
        tensorboard: also write TensorBoard events.
    """

    def __init__(self, run_dir: Path, counters: dict[str, Any], clock: StopClock, *, log_interval_s: float,
                 checkpointer: Checkpointer, payload: Callable[[], dict[str, Any]], progress: Progress,
                 score: Callable[[], float] | None = None, on_log: Callable[[dict[str, float]], None] | None = None,
                 tensorboard: bool = True):
        self.run_dir, self.counters, self.clock = Path(run_dir), counters, clock
        self.log_interval_s, self.checkpointer, self.payload, self.progress = log_interval_s, checkpointer, payload, progress
        self.score, self.on_log = score, on_log
        counters.setdefault("seconds", 0.0)
        self.started = time.time() - counters["seconds"]
        self.first_step: float | None = None
        self.steps = 0  # steps taken by this process
        self.window = MetricsWindow()
        self.last_row: dict[str, float] = {}
        self.logger = MetricsLogger(run_dir, tensorboard=tensorboard)
        self._signals = contextlib.ExitStack()

    def __enter__(self) -> "Run":
        self._signals.enter_context(stop_on_signals())
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is KeyboardInterrupt and self.steps > 0:
                self.save()  # Ctrl-C or SIGTERM keeps the work done so far; `resume=` continues it
                print(f"interrupted; checkpoint saved: {self.run_dir / CHECKPOINT}", flush=True)
            elif kind is None and not self.checkpointer.saved:
                self.save()  # e.g. a resumed run that had already finished still leaves its checkpoint
        finally:
            self._signals.close()
            self.progress.close()
            self.logger.close()

    def seconds(self) -> float:
        """Training seconds of the run so far, the runs it resumes included."""
        return time.time() - self.started

    def done(self) -> bool:
        return self.clock.done(self.counters, self)

    def step(self, amount: int = 1, postfix: dict[str, Any] | None = None) -> bool:
        """After each step (``amount`` of the clock's counter): advance the bar; returns ``done()``."""
        self.first_step = self.first_step or time.time()
        self.steps += 1
        self.window.steps += 1
        self.progress.step(amount, postfix)
        return self.done()

    def log_due(self, force: bool = False) -> bool:
        return force or time.time() - self.window.started >= self.log_interval_s

    def log(self, row: dict[str, float]) -> None:
        """One row to metrics.csv and TensorBoard (step: the clock's counter), the progress line; a fresh window."""
        self.logger.log(row, self.counters[self.clock.counter])
        if self.on_log is not None:
            self.on_log(row)
        self.progress.row(row)
        self.last_row = row
        self.window.restart()

    def checkpoint_if_due(self, force: bool = False) -> None:
        if force or self.checkpointer.due(time.time()):
            self.save()

    def save(self) -> Path:
        self.counters["seconds"] = self.seconds()
        score = self.score() if self.score is not None else math.nan
        return self.checkpointer.save(self.payload(), self.counters, score)


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

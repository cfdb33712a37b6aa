"""A run's folder: resolved config, metrics.csv, TensorBoard events, checkpoints.

Shared by every trainer (IMPALA, RLlib, supervised). Layout::

    runs/<YYYYmmdd-HHMMSS>-<name>/
        config.yaml        the resolved config
        metrics.csv        one row per log interval
        events.out.tfevents.*
        checkpoint.pt      latest checkpoint, written atomically
        checkpoint-<frames>.pt   the last ``checkpoint.keep_last`` checkpoints (IMPALA; hard links, no extra space)
        checkpoint-best.pt       the one with the best mean return so far (``checkpoint.keep_best``)
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml

CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not fit."""


def new_run_dir(cfg: dict[str, Any], default_name: str) -> Path:
    """A new, empty run folder ``<run_root>/<time>-<name>`` (``cfg["name"]``, ``default_name`` when unset; never
    an existing folder), holding the config. Callers check everything first: bad input leaves no folder behind."""
    cfg["name"] = cfg["name"] or default_name
    root = Path(cfg["run_root"])
    root.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cfg["name"])
    for suffix in [""] + [f"-{i}" for i in range(1, 1000)]:
        run_dir = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}{suffix}"
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        save_config(run_dir, cfg)
        return run_dir
    raise RuntimeError(f"could not create a fresh run folder under {root}")


def save_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())


def load_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no config.yaml in {run_dir}; is it a memrl run folder?")
    return yaml.safe_load(path.read_text())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write then rename, so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves the previous checkpoint and no debris


def save_run_checkpoint(run_dir: Path, payload: dict[str, Any], keep_last: int = 0, best: bool = False,
                        counter: str = "frames") -> Path:
    """``checkpoint.pt`` (the latest) plus the retention policy; returns its path.

    keep_last > 0 also keeps this checkpoint as ``checkpoint-<counter>.pt`` (frames, batches) and deletes
    all but the newest ``keep_last`` of those; ``best`` also keeps it as
    ``checkpoint-best.pt``. The copies are hard links to the file just written
    (a copy where links are not supported), each put in place by an atomic rename.
    """
    latest = Path(run_dir) / CHECKPOINT
    save_checkpoint(latest, payload)
    if keep_last > 0:
        _keep_copy(latest, latest.with_name(f"checkpoint-{int(payload['counters'][counter]):012d}.pt"))
        history = sorted(latest.parent.glob("checkpoint-[0-9]*.pt"))
        for old in history[:-keep_last]:
            old.unlink(missing_ok=True)
    if best:
        _keep_copy(latest, latest.with_name("checkpoint-best.pt"))
    return latest


def _keep_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or the checkpoint inside a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass checkpoint=runs/<run>/checkpoint.pt")
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain containers only, never pickled code."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a memrl checkpoint ({first[:120]})") from None
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise CheckpointError(f"checkpoint {path} is not a memrl checkpoint (no model/config entries)")
    return payload


class MetricsLogger:
    """Appends rows to metrics.csv and TensorBoard; columns are fixed by the first row.

    ``resume_at``: where a resumed run's checkpoint left the ``counter`` column. Rows logged after
    that checkpoint (a run stopped between a log and its next checkpoint) are dropped from
    metrics.csv, and TensorBoard purges their events, since the resumed run logs those steps again.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, counter: str | None = None, resume_at: float | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.columns: list[str] | None = None
        resuming = self.path.exists() and resume_at is not None
        if self.path.exists():
            with open(self.path) as f:
                header = f.readline().strip()
            self.columns = header.split(",") if header else None
            if resuming and self.columns and counter in self.columns:
                self._drop_rows_after(counter, resume_at)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir), purge_step=int(resume_at) + 1 if resuming else None)

    def _drop_rows_after(self, counter: str, resume_at: float) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [row for row in rows if float(row[counter]) <= resume_at]
        if len(kept) == len(rows):
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def log(self, row: dict[str, float], step: int) -> None:
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k, math.nan)) for k in self.columns})
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def read_metrics(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """metrics.csv as columns of floats."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}; is it a memrl run folder that has logged?")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {k: [] for k in (rows[0] if rows else {})}
    for row in rows:
        for k, v in row.items():
            try:
                columns[k].append(float(v))
            except (TypeError, ValueError):
                columns[k].append(math.nan)
    return columns

"""What a supervised task is: batches of sequences, the loss on them, and the metrics that judge them.

A task hands the trainer time-major ``Batch`` es. Its outputs are either bits
(``output_kind="bits"``: independent sigmoid units, the algorithmic tasks) or
classes (``output_kind="classes"``: one softmax over a vocabulary, bAbI). The
loss and the default metrics follow from the output kind; a task adds its own
metrics by overriding ``score`` (additive sums over batches) and ``summarise``
(sums -> reported numbers).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


@dataclass
class Batch:
    """One minibatch of sequences, time-major.

    inputs:  [T, B, I] float vectors, or [T, B] long token ids
    targets: [T, B, O] float bits, or [T, B] long class ids
    mask:    [T, B] bool, True where the step's target counts
    reset:   [T, B] bool or None, True where a new sequence starts (the core
             re-initialises that row's state before the step)
    info:    per-step tensors [T, B] that a task's metrics need (e.g. question ids)
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    reset: torch.Tensor | None = None
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]

    def segment(self, start: int, end: int) -> "Batch":
        """Steps ``start:end`` of every sequence (for truncated BPTT)."""
        cut = lambda t: None if t is None else t[start:end]  # noqa: E731
        return Batch(cut(self.inputs), cut(self.targets), cut(self.mask), cut(self.reset),
                     {k: cut(v) for k, v in self.info.items()})

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.inputs), move(self.targets), move(self.mask), move(self.reset),
                     {k: move(v) for k, v in self.info.items()})


class Task:
    """Base class of every supervised task.

    A subclass sets ``input_kind`` ("vector" or "token"), ``input_size`` (I, or
    the vocabulary size for tokens), ``output_kind`` ("bits" or "classes"),
    ``output_size`` (O), and implements ``train_batch`` and
    ``validation_batches``. ``stream=True`` means consecutive training batches
    continue the same sequences, so the trainer carries the core state from one
    batch to the next (``reset`` marks where a new sequence begins).
    """

    input_kind: str = "vector"
    input_size: int
    output_kind: str = "bits"
    output_size: int
    stream: bool = False

    # -- data -----------------------------------------------------------------------------
    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch:
        raise NotImplementedError

    def validation_batches(self, batch_size: int) -> Iterator[Batch]:
        """The same batches every call (a fixed seed or a fixed split)."""
        raise NotImplementedError

    # -- curriculum and progress --------------------------------------------------------------
    def observe(self, summary: dict[str, float]) -> None:
        """Called with each training batch's summary (e.g. to advance a curriculum)."""

    def progress(self) -> dict[str, float]:
        """Numbers to log with every row (e.g. the curriculum level)."""
        return {}

    # -- metrics ----------------------------------------------------------------------------
    def score(self, logits: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Additive sums over one batch; ``summarise`` turns sums into reported metrics."""
        if self.output_kind == "bits":
            return score_bits(logits, batch)
        return score_classes(logits, batch)

    def summarise(self, sums: dict[str, float]) -> dict[str, float]:
        """Reported metrics from summed scores; the same keys whatever the sums (NaN when empty)."""
        if self.output_kind == "bits":
            return summarise_bits(sums)
        return summarise_classes(sums)

    def headline(self) -> str:
        """The metric shown next to the loss on the progress bar."""
        return "bit_errors_per_seq" if self.output_kind == "bits" else "accuracy"

    def headline_mode(self) -> str:
        """"max" when a larger headline metric is better (accuracy), else "min" (errors, bits, perplexity)."""
        return "max" if self.headline() == "accuracy" else "min"

    # -- evaluation of a trained model ---------------------------------------------------------
    def evaluate(self, run_model, eval_cfg: dict[str, Any]) -> dict[str, Any]:
        """``{"rows": [...], "markdown": str}`` for ``memrl eval``; by default the validation metrics."""
        sums = sum_scores(self, run_model, self.validation_batches(eval_cfg.get("batch_size", 16)))
        row = self.summarise(sums)
        return {"rows": [row], "markdown": markdown_table([row])}

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def loss(task: Task, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The training objective for a batch (see ``bits_loss`` and ``classes_loss``)."""
    return bits_loss(logits, batch) if task.output_kind == "bits" else classes_loss(logits, batch)


def bits_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Sigmoid cross-entropy summed over target bits and steps, per sequence (nats).

    logits, batch.targets: [T, B, O]; batch.mask: [T, B]. Summing per sequence
    (not averaging) is the NTM's "cost per sequence"; divided by ln 2 it is bits.
    """
    per_bit = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
    return (per_bit.sum(-1) * batch.mask).sum() / batch.batch_size


def classes_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Softmax cross-entropy averaged over the steps with a target (nats per target).

    logits: [T, B, O]; batch.targets: [T, B] long; batch.mask: [T, B].
    """
    picked = logits[batch.mask]
    if picked.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(picked, batch.targets[batch.mask])


def score_bits(logits: torch.Tensor, batch: Batch) -> dict[str, float]:
    mask = batch.mask.unsqueeze(-1)
    per_bit = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
    wrong = (logits > 0) != (batch.targets > 0.5)
    return {
        "sequences": float(batch.batch_size),
        "loss_nats": float((per_bit * mask).sum()),
        "bit_errors": float((wrong & mask).sum()),
    }


def summarise_bits(sums: dict[str, float]) -> dict[str, float]:
    sequences = sums.get("sequences", 0.0)
    return {
        "loss_bits_per_seq": ratio(sums.get("loss_nats", 0.0) / LN2, sequences),
        "bit_errors_per_seq": ratio(sums.get("bit_errors", 0.0), sequences),
    }


def score_classes(logits: torch.Tensor, batch: Batch) -> dict[str, float]:
    picked, targets = logits[batch.mask], batch.targets[batch.mask]
    return {
        "targets": float(targets.numel()),
        "correct": float((picked.argmax(-1) == targets).sum()),
        "loss_nats": float(F.cross_entropy(picked, targets, reduction="sum")) if targets.numel() else 0.0,
    }


def summarise_classes(sums: dict[str, float]) -> dict[str, float]:
    targets = sums.get("targets", 0.0)
    return {"loss": ratio(sums.get("loss_nats", 0.0), targets), "accuracy": ratio(sums.get("correct", 0.0), targets)}


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def add_sums(total: dict[str, float], sums: dict[str, float]) -> dict[str, float]:
    for key, value in sums.items():
        total[key] = total.get(key, 0.0) + value
    return total


@torch.no_grad()
def sum_scores(task: Task, run_model, batches) -> dict[str, float]:
    """Scores of ``run_model(batch) -> logits`` summed over ``batches``."""
    total: dict[str, float] = {}
    for batch in batches:
        add_sums(total, task.score(run_model(batch), batch))
    return total


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a GitHub markdown table (columns = union of keys in first-seen order)."""
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def make_dataclass_config(config_cls: type, values: dict[str, Any], where: str):
    """A typed config from a dict; unknown keys give a one-line ValueError naming the valid ones."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(fields)}")
    return config_cls(**values)

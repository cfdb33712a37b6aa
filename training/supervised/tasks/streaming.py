"""Next-token prediction on a long token stream, with the core state carried between segments.

Shared by ``task=language`` (bytes, characters, words) and ``task=speech``
(μ-law samples). A split is a ``Corpus``: one token sequence, the documents
(a text, one speaker's recordings) concatenated, with ``starts`` marking the
first token of each. The step with input x_i predicts x_{i+1}; no prediction
crosses a document boundary, and the core state is reset at each document's
first token.

Training (``train_batch``): the N − 1 predictions of the training split are cut
into B contiguous streams of L = ⌊(N − 1) / B⌋ steps (the remainder is unused);
each call returns the next ``segment_length`` steps of every stream, so
consecutive batches join without a gap and the trainer carries the state from
one to the next (``stream = True``). A stream wraps around after L steps, with
a reset there.

Evaluation (``evaluation_batches``): the predictions of a split are cut into B
contiguous streams of ⌈(N − 1) / B⌉ steps (the last ones padded, masked off) and
read in segments, state carried, so every prediction is scored exactly once.
Each stream starts with a reset: its first predictions see no context from
before the stream. ``validation_batches`` scores a fixed prefix of the
validation split (``validation_tokens``) during training; ``evaluate`` (end of
training, ``memrl eval``) scores the whole validation and test splits.

Metrics: ``loss`` (nats per prediction), ``accuracy``, ``bits_per_<unit>``
(loss / ln 2) and ``perplexity`` (e^loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from .base import LN2, Batch, Task, markdown_table, summarise_classes, sum_scores


@dataclass
class Corpus:
    """tokens [N] integer ids; starts [N] bool, True at the first token of each document."""

    tokens: torch.Tensor
    starts: torch.Tensor

    def __post_init__(self):
        if self.starts.shape != self.tokens.shape:
            raise ValueError(f"starts {tuple(self.starts.shape)} and tokens {tuple(self.tokens.shape)} differ in shape")

    @property
    def predictions(self) -> int:
        """Steps with an input: every token but the last."""
        return max(self.tokens.numel() - 1, 0)

    @staticmethod
    def join(documents: list[torch.Tensor]) -> "Corpus":
        """One corpus from documents [N_d] each; empty documents are skipped."""
        documents = [d for d in documents if d.numel()]
        if not documents:
            return Corpus(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))
        starts = [torch.zeros(d.numel(), dtype=torch.bool) for d in documents]
        for s in starts:
            s[0] = True
        return Corpus(torch.cat(documents), torch.cat(starts))


def stream_batch(corpus: Corpus, positions: torch.Tensor, valid: torch.Tensor, stream_start: torch.Tensor) -> Batch:
    """The batch whose step (t, b) reads input ``positions[t, b]`` and predicts the token after it.

    positions [T, B] long (any value where not valid); valid [T, B] bool (padding is
    False); stream_start [T, B] bool, True where a stream begins (a reset).
    ``info["position"]`` keeps the input positions (−1 on padding).
    """
    safe = torch.where(valid, positions, torch.zeros_like(positions))
    inputs = corpus.tokens[safe].long()
    targets = corpus.tokens[safe + valid.long()].long()  # padding reads (0, 0): never scored
    reset = (corpus.starts[safe] & valid) | stream_start
    mask = valid & ~corpus.starts[safe + valid.long()]  # no prediction across a document boundary
    return Batch(inputs, targets, mask, reset, {"position": torch.where(valid, positions, -1)})


class TrainingStreams:
    """B contiguous streams through a corpus, read ``segment_length`` steps at a time, wrapping around."""

    def __init__(self, corpus: Corpus, segment_length: int):
        self.corpus, self.segment_length = corpus, segment_length
        self.cursor = 0  # steps of every stream read so far

    def next_batch(self, batch_size: int) -> Batch:
        length = self.corpus.predictions // batch_size
        if length < 1:
            raise ValueError(f"the training split has {self.corpus.tokens.numel()} tokens, too few for "
                             f"batch_size={batch_size} streams; lower batch_size or use a longer corpus")
        steps = self.cursor + torch.arange(self.segment_length)
        offset = steps % length  # [T]
        positions = torch.arange(batch_size)[None] * length + offset[:, None]  # [T, B]
        valid = torch.ones_like(positions, dtype=torch.bool)
        stream_start = (offset == 0)[:, None].expand_as(positions)  # each (re)start of a stream
        self.cursor += self.segment_length
        return stream_batch(self.corpus, positions, valid, stream_start)


def evaluation_batches(corpus: Corpus, batch_size: int, segment_length: int,
                       limit: int | None = None) -> Iterator[Batch]:
    """Every prediction of ``corpus`` (or of its first ``limit + 1`` tokens) once, in B streams of segments."""
    count = corpus.predictions if limit is None else min(limit, corpus.predictions)
    length = -(-count // batch_size)  # ⌈count / B⌉ steps per stream
    for start in range(0, length, segment_length):
        offset = torch.arange(start, min(start + segment_length, length))
        positions = torch.arange(batch_size)[None] * length + offset[:, None]
        valid = positions < count
        yield stream_batch(corpus, positions, valid, (offset == 0)[:, None].expand_as(positions))


@dataclass
class StreamConfig:
    """The streaming fields every stream task has (a task's config adds its own)."""

    segment_length: int = 64  # T: steps per training batch and per evaluation segment (state carried between)
    validation_tokens: int | None = 32768  # validation during training scores this prefix of the validation split (null: all)


class StreamTask(Task):
    """Next-token prediction on ``self.splits`` = {"train", "valid", "test": Corpus}; see the module docstring.

    A subclass sets ``unit`` (the metric is ``bits_per_<unit>``), ``input_size``
    = ``output_size`` (the vocabulary) and ``splits``, then calls ``start_streams``.
    """

    input_kind = "token"
    output_kind = "classes"
    stream = True
    unit = "token"

    def check_stream_config(self, config) -> None:
        if not isinstance(config.segment_length, int) or config.segment_length < 1:
            raise ValueError(f"task.segment_length={config.segment_length} must be a positive integer")
        if config.validation_tokens is not None and config.validation_tokens < 1:
            raise ValueError(f"task.validation_tokens={config.validation_tokens} must be positive (null: the whole split)")

    def start_streams(self) -> None:
        for split in ("train", "valid", "test"):
            if self.splits[split].predictions < 1:
                raise ValueError(f"the {split} split has {self.splits[split].tokens.numel()} tokens; it needs at least 2")
        self.training = TrainingStreams(self.splits["train"], self.config.segment_length)

    # -- data -------------------------------------------------------------------------------------
    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch:
        return self.training.next_batch(batch_size)

    def validation_batches(self, batch_size: int) -> Iterator[Batch]:
        return evaluation_batches(self.splits["valid"], batch_size, self.config.segment_length,
                                  self.config.validation_tokens)

    # -- metrics ----------------------------------------------------------------------------------
    def summarise(self, sums: dict[str, float]) -> dict[str, float]:
        row = summarise_classes(sums)
        row[f"bits_per_{self.unit}"] = row["loss"] / LN2
        row["perplexity"] = math.exp(row["loss"]) if row["loss"] == row["loss"] else math.nan
        return row

    def headline(self) -> str:
        return f"bits_per_{self.unit}"

    def evaluate(self, run_model, eval_cfg: dict[str, Any]) -> dict[str, Any]:
        """The whole validation and test splits, each prediction once, state carried between segments."""
        rows = []
        for split in ("valid", "test"):
            batches = evaluation_batches(self.splits[split], eval_cfg.get("batch_size", 16), self.config.segment_length)
            sums = sum_scores(self, run_model, batches)
            rows.append({"split": split, "predictions": int(sums.get("targets", 0)), **self.summarise(sums)})
        return {"rows": rows, "markdown": markdown_table(rows)}

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.training.cursor, "vocabulary_size": self.output_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["vocabulary_size"] != self.output_size:
            raise ValueError(f"the checkpoint's vocabulary has {state['vocabulary_size']} tokens, this corpus "
                             f"{self.output_size}; point task.path at the corpus the run was trained on")
        self.training.cursor = state["cursor"]

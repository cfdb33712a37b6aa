"""The NTM algorithmic tasks with the thesis' exponential curriculum (Rae, Sec. 3.4.2-3.4.3).

Every task maps a level ℓ to a size (``min_size + ℓ``: vectors to copy, pairs
to store, items to sort) and builds batches of random sequences at that size.
Inputs are bit vectors plus flag channels that mark what each step is;
targets are bits, scored only on the answer steps. The answer phase always has
its own flag, so a model knows when to answer without counting.

copy (I = W + 2, O = W)
    n random W-bit vectors, a delimiter step, then n answer steps whose targets
    are the n vectors in order. T = 2n + 1.
associative_recall (I = W + 4, O = W)
    n (key, value) pairs, each key and value L steps of W bits (keys distinct),
    then a query key (L steps) and L answer steps whose target is the value
    stored with that key. Channels: W bits, key, value, query, answer flags.
    T = 2nL + 2L.
priority_sort (I = W + 3, O = W)
    n random W-bit keys, each with a priority drawn from U(-1, 1) in its own
    channel, a delimiter, then m = max(1, round(fraction n)) answer steps whose
    targets are the m keys of highest priority, highest first (the NTM's 20 ->
    16 is fraction 0.8). T = n + 1 + m.

Metrics: ``loss_bits_per_seq`` (the cross-entropy cost per sequence in bits)
and ``bit_errors_per_seq`` (target bits wrong after thresholding at 0.5);
``level`` is the curriculum's h.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ..curriculum import CurriculumConfig, ExponentialCurriculum
from . import register_task
from .base import Batch, Task, make_dataclass_config, markdown_table, sum_scores

VALIDATION_SEED_OFFSET = 7_919  # validation batches never share the training stream's seed
MAX_CODE_BITS = 62  # keys are drawn as int64 codes


@dataclass
class CopyConfig:
    bits: int = 8  # W: random bits per vector
    min_size: int = 1  # vectors to copy at level 0 (level ℓ copies min_size + ℓ)
    curriculum: dict = field(default_factory=dict)  # start_level, threshold, window, max_level (curriculum.py)
    validation_batches: int = 8  # fixed-seed batches per validation, levels drawn from U{0..h}


@dataclass
class AssociativeRecallConfig:
    bits: int = 8  # W: bits per step of a key or value
    item_length: int = 1  # L: steps per key and per value (keys are W*L-bit codes)
    min_size: int = 1  # (key, value) pairs at level 0 (level ℓ stores min_size + ℓ)
    curriculum: dict = field(default_factory=dict)  # start_level, threshold, window, max_level (curriculum.py)
    validation_batches: int = 8  # fixed-seed batches per validation, levels drawn from U{0..h}


@dataclass
class PrioritySortConfig:
    bits: int = 8  # W: random bits per key
    fraction: float = 0.8  # share of the keys to output, highest priority first (NTM: 16 of 20)
    min_size: int = 1  # keys at level 0 (level ℓ sorts min_size + ℓ)
    curriculum: dict = field(default_factory=dict)  # start_level, threshold, window, max_level (curriculum.py)
    validation_batches: int = 8  # fixed-seed batches per validation, levels drawn from U{0..h}


class AlgorithmicTask(Task):
    """Shared curriculum, validation and generalisation evaluation of the algorithmic tasks."""

    input_kind = "vector"
    output_kind = "bits"

    def __init__(self, config, seed: int):
        if config.bits < 1:
            raise ValueError(f"task.bits={config.bits} must be >= 1")
        if config.min_size < 1:
            raise ValueError(f"task.min_size={config.min_size} must be >= 1")
        if config.validation_batches < 1:
            raise ValueError(f"task.validation_batches={config.validation_batches} must be >= 1")
        self.config = config
        self.seed = seed
        curriculum = make_dataclass_config(CurriculumConfig, dict(config.curriculum), "task.curriculum")
        limit = self.level_limit()
        if limit is not None:
            if curriculum.start_level > limit:
                raise ValueError(f"task.curriculum.start_level={curriculum.start_level} exceeds the task's largest level {limit}")
            curriculum.max_level = min(curriculum.max_level or limit, limit)
        self.curriculum = ExponentialCurriculum(curriculum)

    # -- what a subclass provides -------------------------------------------------------
    def sample(self, level: int, batch_size: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def chance_bit_errors(self, level: int) -> float:
        """Expected bit errors per sequence of a coin-flipping answer."""
        raise NotImplementedError

    def level_limit(self) -> int | None:
        """The largest level the task can build (None: unbounded)."""
        return None

    def size(self, level: int) -> int:
        return self.config.min_size + level

    # -- Task -------------------------------------------------------------------------------
    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch:
        return self.sample(self.curriculum.sample(generator), batch_size, generator)

    def validation_batches(self, batch_size: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed + VALIDATION_SEED_OFFSET)
        for _ in range(self.config.validation_batches):
            yield self.sample(self.curriculum.sample(generator), batch_size, generator)

    def observe(self, summary: dict[str, float]) -> None:
        self.curriculum.observe(summary["loss_bits_per_seq"])

    def progress(self) -> dict[str, float]:
        return {"level": self.curriculum.level, "max_size": self.size(self.curriculum.level)}

    def evaluate(self, run_model, eval_cfg: dict[str, Any]) -> dict[str, Any]:
        """Generalisation: bit errors per sequence at fixed levels, beyond the trained h by default."""
        trained = self.curriculum.level
        limit = self.level_limit()
        levels = eval_cfg.get("levels")
        if not levels:
            levels = [factor * trained for factor in (1, 2, 4, 8)]
            if limit is not None:  # stop at the task's largest level: a long run must not end in an error
                levels = sorted({min(level, limit) for level in levels})
        rows = []
        for level in levels:
            if limit is not None and level > limit:
                raise ValueError(f"eval level {level} exceeds the task's largest level {limit}; lower eval.levels")
            generator = torch.Generator().manual_seed(eval_cfg.get("seed", 0) + level)
            batches = [self.sample(level, eval_cfg.get("batch_size", 16), generator) for _ in range(eval_cfg.get("batches", 4))]
            summary = self.summarise(sum_scores(self, run_model, batches))
            rows.append({
                "level": level, "size": self.size(level), "steps": batches[0].length, "trained_level": trained,
                "bit_errors_per_seq": summary["bit_errors_per_seq"], "loss_bits_per_seq": summary["loss_bits_per_seq"],
                "chance_bit_errors_per_seq": self.chance_bit_errors(level),
            })
        return {"rows": rows, "markdown": markdown_table(rows)}

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])


@register_task("copy", CopyConfig)
class CopyTask(AlgorithmicTask):
    def __init__(self, config: CopyConfig, seed: int):
        super().__init__(config, seed)
        self.input_size = config.bits + 2  # bits, delimiter flag, answer flag
        self.output_size = config.bits

    def sample(self, level, batch_size, generator):
        n, bits = self.size(level), self.config.bits
        data = random_bits((n, batch_size, bits), generator)
        inputs = torch.zeros(2 * n + 1, batch_size, bits + 2)
        inputs[:n, :, :bits] = data
        inputs[n, :, bits] = 1.0
        inputs[n + 1:, :, bits + 1] = 1.0
        return answer_phase_batch(inputs, data, answer_start=n + 1)

    def chance_bit_errors(self, level):
        return self.size(level) * self.config.bits / 2


@register_task("associative_recall", AssociativeRecallConfig)
class AssociativeRecallTask(AlgorithmicTask):
    def __init__(self, config: AssociativeRecallConfig, seed: int):
        if config.item_length < 1:
            raise ValueError(f"task.item_length={config.item_length} must be >= 1")
        if config.bits * config.item_length > MAX_CODE_BITS:
            raise ValueError(f"task.bits * task.item_length = {config.bits * config.item_length} exceeds {MAX_CODE_BITS}")
        self.config = config  # level_limit() needs it before the base constructor runs
        super().__init__(config, seed)
        self.input_size = config.bits + 4  # bits, key, value, query, answer flags
        self.output_size = config.bits

    def level_limit(self):
        # Keys are distinct, so a sequence holds at most 2^(W L) pairs.
        return 2 ** (self.config.bits * self.config.item_length) - self.config.min_size

    def sample(self, level, batch_size, generator):
        n, steps, bits = self.size(level), self.config.item_length, self.config.bits
        keys = code_bits(distinct_codes(batch_size, n, bits * steps, generator), bits * steps)
        keys = keys.view(batch_size, n, steps, bits)
        values = random_bits((batch_size, n, steps, bits), generator)
        query = torch.randint(0, n, (batch_size,), generator=generator)
        rows = torch.arange(batch_size)
        pairs = torch.stack([keys, values], dim=2).reshape(batch_size, 2 * n * steps, bits)
        store = 2 * n * steps
        inputs = torch.zeros(store + 2 * steps, batch_size, bits + 4)
        inputs[:store, :, :bits] = pairs.transpose(0, 1)
        is_key = (torch.arange(store) // steps) % 2 == 0
        inputs[:store, :, bits] = is_key.float()[:, None]
        inputs[:store, :, bits + 1] = (~is_key).float()[:, None]
        inputs[store:store + steps, :, :bits] = keys[rows, query].transpose(0, 1)
        inputs[store:store + steps, :, bits + 2] = 1.0
        inputs[store + steps:, :, bits + 3] = 1.0
        return answer_phase_batch(inputs, values[rows, query].transpose(0, 1), answer_start=store + steps)

    def chance_bit_errors(self, level):
        return self.config.item_length * self.config.bits / 2


@register_task("priority_sort", PrioritySortConfig)
class PrioritySortTask(AlgorithmicTask):
    def __init__(self, config: PrioritySortConfig, seed: int):
        if not 0 < config.fraction <= 1:
            raise ValueError(f"task.fraction={config.fraction} must be in (0, 1]")
        super().__init__(config, seed)
        self.input_size = config.bits + 3  # bits, priority, delimiter flag, answer flag
        self.output_size = config.bits

    def outputs(self, level: int) -> int:
        return max(1, round(self.config.fraction * self.size(level)))

    def sample(self, level, batch_size, generator):
        n, m, bits = self.size(level), self.outputs(level), self.config.bits
        keys = random_bits((n, batch_size, bits), generator)
        priority = torch.rand(n, batch_size, generator=generator) * 2 - 1
        inputs = torch.zeros(n + 1 + m, batch_size, bits + 3)
        inputs[:n, :, :bits] = keys
        inputs[:n, :, bits] = priority
        inputs[n, :, bits + 1] = 1.0
        inputs[n + 1:, :, bits + 2] = 1.0
        order = priority.argsort(dim=0, descending=True)[:m]  # [m, B]
        sorted_keys = keys.gather(0, order[:, :, None].expand(m, batch_size, bits))
        return answer_phase_batch(inputs, sorted_keys, answer_start=n + 1)

    def chance_bit_errors(self, level):
        return self.outputs(level) * self.config.bits / 2


def answer_phase_batch(inputs: torch.Tensor, answers: torch.Tensor, answer_start: int) -> Batch:
    """A batch whose targets are ``answers`` [A, B, W] on the last A steps of ``inputs`` [T, B, I]."""
    T, B = inputs.shape[:2]
    targets = torch.zeros(T, B, answers.shape[-1])
    targets[answer_start:] = answers
    mask = torch.zeros(T, B, dtype=torch.bool)
    mask[answer_start:] = True
    return Batch(inputs, targets, mask)


def random_bits(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).float()


def distinct_codes(batch_size: int, count: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """[B, count] int64 codes in [0, 2^width), distinct within each row."""
    space = 2 ** width
    if count > space:
        raise ValueError(f"{count} distinct keys do not fit in {width} bits; raise task.bits or task.item_length")
    if space <= 65_536:
        return torch.rand(batch_size, space, generator=generator).argsort(dim=1)[:, :count]
    codes = torch.randint(0, space, (batch_size, count), generator=generator)
    while True:  # redraw rows with a repeat; rare when space >> count^2
        ordered = codes.sort(dim=1).values
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
        if not repeated.any():
            return codes
        codes[repeated] = torch.randint(0, space, (int(repeated.sum()), count), generator=generator)


def code_bits(codes: torch.Tensor, width: int) -> torch.Tensor:
    """codes [...] int64 -> [..., width] float bits, least significant first."""
    return ((codes[..., None] >> torch.arange(width)) & 1).float()

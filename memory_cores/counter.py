"""``counter``: a diagnostic core with no parameters that counts steps since the episode began.

Paired with the ``memrl/counter`` env (whose observation is the same count) it
proves the runtime's state hand-off: the learner, replaying the core from the
state an actor sent, must see output == observation at every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict

from .base import MemoryCore
from .registry import register


@dataclass
class CounterConfig:
    pass


@register("counter", CounterConfig)
class CounterCore(MemoryCore):
    """out_t [T, B, 1] = steps taken in the current episode before step t (0 at a reset)."""

    def __init__(self, input_size: int, config: CounterConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = 1

    def initial_state(self, batch_size, device=None):
        return TensorDict({"count": torch.zeros(batch_size, 1, device=device)}, batch_size=[batch_size], device=device)

    def forward(self, x, state, reset):
        def step(x_t, s):
            count = s["count"].to(x_t.dtype)
            return count, TensorDict({"count": count + 1}, batch_size=s.batch_size, device=x_t.device), {}

        return self.unroll_steps(step, x, state, reset)

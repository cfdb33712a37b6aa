"""``feedforward``: no memory at all, the control baseline."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .registry import register


@dataclass
class FeedforwardConfig:
    hidden_size: int = 128  # width of the one ReLU layer (O)


@register("feedforward", FeedforwardConfig)
class FeedforwardCore(MemoryCore):
    """out_t = relu(W x_t + b); the state is empty, so resets change nothing."""

    def __init__(self, input_size: int, config: FeedforwardConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = config.hidden_size
        self.layer = nn.Linear(input_size, config.hidden_size)

    def initial_state(self, batch_size, device=None):
        return TensorDict({}, batch_size=[batch_size], device=device)

    def forward(self, x, state, reset):
        return torch.relu(self.layer(x)), state, {}

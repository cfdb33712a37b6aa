"""``lstm``: a (stacked) LSTM with per-env resets inside the unroll."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .registry import register


@dataclass
class LSTMConfig:
    hidden_size: int = 128  # units per layer (O)
    num_layers: int = 1  # stacked LSTM layers


@register("lstm", LSTMConfig)
class LSTMCore(MemoryCore):
    """State: ``h``, ``c`` of shape [B, num_layers, hidden_size], zero at episode start.

    The fast path runs ``nn.LSTM`` over the stretches between reset times (one
    call when nothing resets); ``forward_per_step`` is its slow twin.
    """

    def __init__(self, input_size: int, config: LSTMConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = config.hidden_size
        self.lstm = nn.LSTM(input_size, config.hidden_size, num_layers=config.num_layers)

    def initial_state(self, batch_size, device=None):
        shape = (batch_size, self.config.num_layers, self.config.hidden_size)
        return TensorDict(
            {"h": torch.zeros(shape, device=device), "c": torch.zeros(shape, device=device)},
            batch_size=[batch_size],
            device=device,
        )

    def forward(self, x, state, reset):
        out, state = self.unroll_between_resets(self._run, x, state, reset)
        return out, state, {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: one ``nn.LSTM`` call per step."""
        def step(x_t, s):
            out, s = self._run(x_t[None], s)
            return out[0], s, {}

        return self.unroll_steps(step, x, state, reset)

    def _run(self, x, state):
        # nn.LSTM wants [num_layers, B, H]; the state is batch-first.
        hx = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = self.lstm(x, hx)
        new_state = TensorDict(
            {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}, batch_size=state.batch_size, device=x.device
        )
        return out, new_state

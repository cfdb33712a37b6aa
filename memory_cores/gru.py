"""``gru``: a (stacked) GRU with per-env resets inside the unroll.

Each layer (Cho et al. 2014; the form of ``torch.nn.GRU``), with x_t the
layer's input and h_{t-1} its state:

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

POPGym (Morad et al. 2023) found the GRU the best of its memory baselines.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .registry import register


@dataclass
class GRUConfig:
    hidden_size: int = 128  # units per layer (O)
    num_layers: int = 1  # stacked GRU layers


@register("gru", GRUConfig)
class GRUCore(MemoryCore):
    """State: ``h`` of shape [B, num_layers, hidden_size], zero at episode start.

    The fast path runs ``nn.GRU`` over the stretches between reset times (one
    call when nothing resets); ``forward_per_step`` is its slow twin.
    """

    def __init__(self, input_size: int, config: GRUConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = config.hidden_size
        self.gru = nn.GRU(input_size, config.hidden_size, num_layers=config.num_layers)

    def initial_state(self, batch_size, device=None):
        shape = (batch_size, self.config.num_layers, self.config.hidden_size)
        return TensorDict({"h": torch.zeros(shape, device=device)}, batch_size=[batch_size], device=device)

    def forward(self, x, state, reset):
        out, state = self.unroll_between_resets(self._run, x, state, reset)
        return out, state, {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: one ``nn.GRU`` call per step."""
        def step(x_t, s):
            out, s = self._run(x_t[None], s)
            return out[0], s, {}

        return self.unroll_steps(step, x, state, reset)

    def _run(self, x, state):
        # nn.GRU wants [num_layers, B, H]; the state is batch-first.
        out, h = self.gru(x, state["h"].transpose(0, 1).contiguous())
        return out, TensorDict({"h": h.transpose(0, 1)}, batch_size=state.batch_size, device=x.device)

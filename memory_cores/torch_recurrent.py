"""Cores that wrap a ``torch.nn`` recurrent module (``nn.LSTM``, ``nn.GRU``), written once for both.

The fast path runs the module over the stretches between reset times (one
call when nothing resets); ``forward_per_step`` is its slow twin, one module
call per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore


@dataclass
class RecurrentConfig:
    hidden_size: int = 128  # units per layer (O)
    num_layers: int = 1  # stacked layers


class TorchRecurrentCore(MemoryCore):
    """State: one tensor per name in ``state_names``, each [B, num_layers, hidden_size], zero at episode start.

    A subclass names the module class, the attribute that holds it (the name
    its weights have in checkpoints) and the state tensors, in the order the
    module takes them.
    """

    module_class: type[nn.RNNBase]
    module_name: str
    state_names: tuple[str, ...]

    def __init__(self, input_size: int, config: RecurrentConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = config.hidden_size
        self.add_module(self.module_name, self.module_class(input_size, config.hidden_size, num_layers=config.num_layers))

    def initial_state(self, batch_size, device=None):
        shape = (batch_size, self.config.num_layers, self.config.hidden_size)
        return TensorDict({name: torch.zeros(shape, device=device) for name in self.state_names},
                          batch_size=[batch_size], device=device)

    def forward(self, x, state, reset):
        """One module call per stretch between reset times. The state stays in the module's layout
        [num_layers, B, H] throughout and a reset zeroes its envs' columns in place of the initial state
        (zero), so an actor's one-step call costs one module call and no TensorDict in between."""
        hidden = tuple(state[name].transpose(0, 1).contiguous() for name in self.state_names)
        module = getattr(self, self.module_name)
        # Reset times split the unroll; step 0 is always a start (T = 1, an actor's step: no search).
        starts = [0] if reset is None or x.shape[0] == 1 else sorted({0, *torch.nonzero(reset[1:].any(dim=1)).add(1).flatten().tolist()})
        outs = []
        for start, end in zip(starts, starts[1:] + [x.shape[0]]):
            if reset is not None:
                hidden = tuple(torch.where(reset[start][None, :, None], 0, h) for h in hidden)
            out, hidden = module(x[start:end], hidden if len(hidden) > 1 else hidden[0])
            hidden = hidden if isinstance(hidden, tuple) else (hidden,)
            outs.append(out)
        new_state = TensorDict({name: h.transpose(0, 1) for name, h in zip(self.state_names, hidden)},
                               batch_size=state.batch_size, device=x.device)
        return outs[0] if len(outs) == 1 else torch.cat(outs), new_state, {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: one module call per step."""
        def step(x_t, s):
            out, s, _ = self.forward(x_t[None], s, None)
            return out[0], s, {}

        return self.unroll_steps(step, x, state, reset)

"""``lstm``: a (stacked) LSTM with per-env resets inside the unroll (``torch.nn.LSTM``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import register
from .torch_recurrent import RecurrentConfig, TorchRecurrentCore


@dataclass
class LSTMConfig(RecurrentConfig):
    # Added to every layer's forget-gate bias at initialisation, so a fresh LSTM keeps what it stores
    # (Jozefowicz et al. 2015; Sonnet's and TensorFlow's LSTMs, used by IMPALA, add 1.0). 0: PyTorch's init.
    forget_bias: float = 0.0


@register("lstm", LSTMConfig)
class LSTMCore(TorchRecurrentCore):
    """State: ``h``, ``c`` of shape [B, num_layers, hidden_size], zero at episode start.

    The fast path runs ``nn.LSTM`` over the stretches between reset times (one
    call when nothing resets); ``forward_per_step`` is its slow twin.
    """

    module_class, module_name, state_names = nn.LSTM, "lstm", ("h", "c")

    def __init__(self, input_size: int, config: LSTMConfig):
        super().__init__(input_size, config)
        hidden = config.hidden_size
        with torch.no_grad():
            for layer in range(config.num_layers):
                # nn.LSTM's gate order is input, forget, cell, output.
                getattr(self.lstm, f"bias_ih_l{layer}")[hidden:2 * hidden] += config.forget_bias

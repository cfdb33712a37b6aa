"""``lstm``: a (stacked) LSTM with per-env resets inside the unroll (``torch.nn.LSTM``)."""
from __future__ import annotations

from torch import nn

from .registry import register
from .torch_recurrent import RecurrentConfig, TorchRecurrentCore


@register("lstm", RecurrentConfig)
class LSTMCore(TorchRecurrentCore):
    """State: ``h``, ``c`` of shape [B, num_layers, hidden_size], zero at episode start.

    The fast path runs ``nn.LSTM`` over the stretches between reset times (one
    call when nothing resets); ``forward_per_step`` is its slow twin.
    """

    module_class, module_name, state_names = nn.LSTM, "lstm", ("h", "c")

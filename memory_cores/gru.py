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

from torch import nn

from .registry import register
from .torch_recurrent import RecurrentConfig, TorchRecurrentCore


@register("gru", RecurrentConfig)
class GRUCore(TorchRecurrentCore):
    """State: ``h`` of shape [B, num_layers, hidden_size], zero at episode start.

    The fast path runs ``nn.GRU`` over the stretches between reset times (one
    call when nothing resets); ``forward_per_step`` is its slow twin.
    """

    module_class, module_name, state_names = nn.GRU, "gru", ("h",)

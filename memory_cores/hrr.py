"""``hrr``: an LSTM controller with a holographic key-value store (HRR traces, krop clean-up).

Per step t and head (R. Liu, *Scalable External Memories*, slides: HRR
key-value memory, mutable read-write, krop clean-up):

    h_t = LSTM([x_t, r_{t−1}])
    a = unitary(W_a h_t)    write address        q = unitary(W_q h_t)  read key
    v_new = clean(W_v h_t)  value to store       g = σ(W_g h_t)        write gate
    v_old = clean(a ⊕ M)                          what the address holds now
    M ← M + g · a ⊛ (v_new − v_old)               = M − a⊛v_old + a⊛v_new when g = 1
    r_t = clean(q ⊕ M)
    out_t = [h_t, r_t]

⊛ is circular convolution (bind), ⊕ circular correlation (unbind), both by
FFT in O(D log D). Keys are unitary (all Fourier moduli 1) so that unbinding
inverts binding exactly and erasing ``v_old`` removes what was written.
``clean`` projects onto the krop codebook of D code vectors in O(D log D):
``hard`` = nearest code (argmax, straight-through gradient), ``soft`` =
softmax mixture of codes, ``none`` = identity. Values pass through the same
clean-up, so what is stored is (close to) a code vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from . import vsa
from .base import MemoryCore
from .registry import register

CLEANUPS = ("hard", "soft", "none")


@dataclass
class HRRConfig:
    hidden_size: int = 64  # LSTM controller units
    num_heads: int = 2  # H: independent traces, each with its own keys, values and gate
    dimension: int = 128  # D: hypervector size, a power of two (the krop codebook holds D codes)
    cleanup: str = "soft"  # clean-up of reads and stored values: hard, soft or none
    cleanup_beta: float = 16.0  # inverse temperature of the soft clean-up (a clean read has similarity 1)
    codebook_seed: int = 0  # seed of the log2(D) krop angles (a fixed buffer, not trained)

    def __post_init__(self):
        vsa.krop_levels(self.dimension)  # ValueError naming a power of two
        if self.cleanup not in CLEANUPS:
            raise ValueError(f"hrr cleanup must be one of {', '.join(CLEANUPS)}, got {self.cleanup!r}")
        for name in ("hidden_size", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"hrr {name} must be >= 1, got {getattr(self, name)}")


@register("hrr", HRRConfig)
class HRRCore(MemoryCore):
    """State (batch-first, per env): LSTM ``h``, ``c`` [B, hidden]; ``trace`` M [B, H, D];
    ``read`` r_{t−1} [B, H, D]. All zero at the start of an episode (an empty store).

    aux: ``write_gate`` [T, B, H], a diagnostic.
    """

    test_config = {"hidden_size": 8, "num_heads": 2, "dimension": 16}

    def __init__(self, input_size: int, config: HRRConfig):
        super().__init__(input_size)
        self.config = config
        heads, size = config.num_heads, config.dimension
        self.output_size = config.hidden_size + heads * size
        self.controller = nn.LSTMCell(input_size + heads * size, config.hidden_size)
        self.keys = nn.Linear(config.hidden_size, 2 * heads * size)  # write address a and read key q
        self.value = nn.Linear(config.hidden_size, heads * size)
        self.write_gate = nn.Linear(config.hidden_size, heads)
        generator = torch.Generator().manual_seed(config.codebook_seed)
        self.register_buffer("angles", vsa.krop_angles(vsa.krop_levels(size), generator=generator))

    def initial_state(self, batch_size, device=None):
        config = self.config
        memory = (batch_size, config.num_heads, config.dimension)
        return TensorDict(
            {
                "h": torch.zeros(batch_size, config.hidden_size, device=device),
                "c": torch.zeros(batch_size, config.hidden_size, device=device),
                "trace": torch.zeros(memory, device=device),
                "read": torch.zeros(memory, device=device),
            },
            batch_size=[batch_size],
            device=device,
        )

    def forward(self, x, state, reset):
        stages = vsa.krop_stages(self.angles.to(x.dtype))  # once per unroll, not once per clean-up
        return self.unroll_steps(lambda x_t, s: self.step(x_t, s, stages), x, state, reset)

    def step(self, x_t, state, stages=None):
        """One controller step and one read-write of every head. x_t: [B, I] -> out [B, O]."""
        B, heads, size = x_t.shape[0], self.config.num_heads, self.config.dimension
        # h, c: the LSTM's hidden and cell state (paper names, also the state keys).
        h, c = self.controller(torch.cat([x_t, state["read"].flatten(1)], -1), (state["h"], state["c"]))
        address, key = vsa.make_unitary(self.keys(h).view(B, 2, heads, size)).unbind(1)
        trace = state["trace"]
        # The value to store and what the address holds now, cleaned up in one batch.
        pair = torch.stack([self.value(h).view(B, heads, size), vsa.unbind(address, trace)])
        value, old = self.clean(pair, stages).unbind(0)
        gate = torch.sigmoid(self.write_gate(h))  # [B, H]
        trace = trace + gate[:, :, None] * vsa.bind(address, value - old)
        read = self.clean(vsa.unbind(key, trace), stages)
        new_state = TensorDict(
            {"h": h, "c": c, "trace": trace, "read": read}, batch_size=state.batch_size, device=x_t.device
        )
        return torch.cat([h, read.flatten(1)], -1), new_state, {"write_gate": gate}

    def clean(self, vector, stages=None):
        """Clean-up of [..., D] against the krop codebook, by ``config.cleanup``.

        stages: ``vsa.krop_stages`` of the angles, to reuse across calls.
        """
        mode, angles = self.config.cleanup, self.angles.to(vector.dtype)
        if mode == "soft":
            return vsa.krop_soft_cleanup(angles, vector, self.config.cleanup_beta, stages)
        if mode == "hard":
            _, code = vsa.krop_cleanup(angles, vector, stages)
            # Straight-through: the forward value is the code, the gradient is the identity's.
            return code + vector - vector.detach()
        return vector

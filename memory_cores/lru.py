"""``lru``: the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
for Long Sequences"), in a residual block, unrolled by a parallel scan with resets (Lu et al. 2023).

Per step, with u_t [B, H] the block's input and h_t [B, N] the complex state:

    u_t = W_in x_t + b_in
    λ   = exp(−exp(ν) + i exp(θ))              diagonal, |λ| < 1 (stable exponential parameterisation)
    h_t = λ ⊙ h_{t−1} + γ ⊙ (B̃ LayerNorm(u_t))  B̃ ∈ C^{N×H}; γ = exp(log γ), initialised to √(1 − |λ|²)
    y_t = Re(C̃ h_t) + D ⊙ LayerNorm(u_t)       C̃ ∈ C^{H×N}, D ∈ R^H
    out_t = u_t + (W_1 g_t) ⊙ σ(W_2 g_t),  g_t = GELU(y_t)      (the paper's GLU block with a skip)

Initialisation (paper, Sec. 3.2-3.3): |λ| uniform on the ring [r_min, r_max]
(ν = log(−log |λ|)), arg λ uniform in [0, max_phase] (θ = log arg λ); the
normalisation γ keeps ‖h‖ of the order of ‖u‖ however close |λ| is to 1.

Over an unroll h follows h_t = a_t ⊙ h_{t−1} + b_t with a_t = λ and
b_t = γ ⊙ B̃ u_t, which ``linear_scan`` computes by the reset-aware parallel
scan (a_t := 0 where an episode starts: the state restarts from 0). Every
other operation is per step, so it runs on all T steps at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .linear_scan import linear_scan
from .registry import register


@dataclass
class LRUConfig:
    hidden_size: int = 128  # H: width of the block's input, GLU and output (O)
    state_size: int = 128  # N: complex state entries per env
    r_min: float = 0.5  # smallest |λ| at initialisation (forgets fastest)
    r_max: float = 0.99  # largest |λ| at initialisation (remembers longest); < 1
    max_phase: float = 6.283  # arg λ drawn from [0, max_phase] at initialisation (2π: the whole circle)

    def __post_init__(self):
        for name in ("hidden_size", "state_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"lru {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.r_min < self.r_max < 1:
            raise ValueError(f"lru needs 0 <= r_min < r_max < 1, got r_min={self.r_min}, r_max={self.r_max}")
        if self.max_phase <= 0:
            raise ValueError(f"lru max_phase must be > 0, got {self.max_phase}; e.g. max_phase=6.283")


@register("lru", LRUConfig)
class LRUCore(MemoryCore):
    """State: ``h`` [B, N, 2], the real and imaginary parts of the complex state, zero at episode start.

    ``forward`` runs every per-step operation on the whole unroll and the
    recurrence by ``linear_scan``; ``forward_per_step`` is its slow twin.
    Parameters are real tensors (real and imaginary parts kept apart), so
    ``.double()`` gives complex128 arithmetic.
    """

    test_config = {"hidden_size": 5, "state_size": 4}

    def __init__(self, input_size: int, config: LRUConfig):
        super().__init__(input_size)
        self.config = config
        hidden, state = config.hidden_size, config.state_size
        self.output_size = hidden
        self.input = nn.Linear(input_size, hidden)
        self.norm = nn.LayerNorm(hidden)
        # |λ| uniform on the ring: |λ|² uniform in [r_min², r_max²].
        radius = torch.sqrt(torch.empty(state).uniform_(config.r_min**2, config.r_max**2))
        phase = torch.empty(state).uniform_(0, config.max_phase).clamp_min(1e-4)
        self.log_neg_log_radius = nn.Parameter(torch.log(-torch.log(radius)))  # ν
        self.log_phase = nn.Parameter(torch.log(phase))  # θ
        self.log_gamma = nn.Parameter(0.5 * torch.log(1 - radius**2))  # log γ
        # B̃, C̃: complex Glorot-like scales as in the paper (1/√(2H) for B̃, 1/√N for C̃).
        self.input_matrix = nn.Parameter(torch.randn(2, state, hidden) / math.sqrt(2 * hidden))
        self.output_matrix = nn.Parameter(torch.randn(2, hidden, state) / math.sqrt(state))
        self.skip = nn.Parameter(torch.randn(hidden))  # D
        self.glu = nn.Linear(hidden, 2 * hidden)

    def initial_state(self, batch_size, device=None):
        h = torch.zeros(batch_size, self.config.state_size, 2, device=device)
        return TensorDict({"h": h}, batch_size=[batch_size], device=device)

    def decay(self) -> torch.Tensor:
        """λ [N], complex."""
        return torch.exp(torch.complex(-self.log_neg_log_radius.exp(), self.log_phase.exp()))

    def _drive(self, x):
        """(u [.., H], LayerNorm(u) [.., H], b = γ ⊙ B̃ LayerNorm(u) [.., N] complex) for x [.., I]."""
        u = self.input(x)
        normed = self.norm(u)
        matrix = torch.complex(self.input_matrix[0], self.input_matrix[1])
        return u, normed, self.log_gamma.exp() * (normed.to(matrix.dtype) @ matrix.T)

    def _output(self, u, normed, h):
        matrix = torch.complex(self.output_matrix[0], self.output_matrix[1])
        y = (h @ matrix.T).real + self.skip * normed
        gate, value = self.glu(nn.functional.gelu(y)).chunk(2, dim=-1)
        return u + value * torch.sigmoid(gate)

    def forward(self, x, state, reset):
        u, normed, drive = self._drive(x)
        h = linear_scan(self.decay(), drive, torch.view_as_complex(state["h"].contiguous()), reset)
        out = self._output(u, normed, h)
        return out, TensorDict({"h": torch.view_as_real(h[-1])}, batch_size=state.batch_size), {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: h_t = λ ⊙ h_{t−1} + b_t one step at a time, resets by ``reset_state``."""
        def step(x_t, s):
            u, normed, drive = self._drive(x_t)
            h = self.decay() * torch.view_as_complex(s["h"].contiguous()) + drive
            return self._output(u, normed, h), TensorDict({"h": torch.view_as_real(h)}, batch_size=s.batch_size), {}

        return self.unroll_steps(step, x, state, reset)

"""``ffm``: Fast and Forgetful Memory (Morad et al., "Reinforcement Learning with Fast and Forgetful
Memory", NeurIPS 2023).

Per step, with x_t [B, I] and the complex state S_t [B, m, c] (m memory
channels, each with c temporal contexts):

    [x̃_t, p_t, g_t] = W x_t + b                          x̃ [m], p [O] (pass-through), g [m + O]
    (i_t, o_t) = σ(g_t)                                   input gate [m], output gate [O]
    S_t = γ ⊙ S_{t−1} + (x̃_t ⊙ i_t) 1_cᵀ                 γ_jk = exp(−|α_j| + i ω_k)
    z_t = W_mix [Re S_t, Im S_t]                          (flattened, 2 m c -> O)
    out_t = LayerNorm(z_t) ⊙ o_t + p_t ⊙ (1 − o_t)

|α_j| is how fast channel j forgets, ω_k the frequency of context k, so S
holds a decayed, phase-encoded sum of the past: S_t = Σ_{s≤t} γ^{t−s} ⊙ x̂_s,
from which W_mix can read both what was seen and how long ago.
Initialisation (the paper's code's scheme and bounds): |α| spaced linearly from
"halves every step" (log 2) to "down to ``forgotten_at`` after ``max_period``
steps"; ω_k = 2π / P_k with periods P_k in [min_period, max_period] = [1, 1024].
A period of 1 step is ω = 2π: no rotation on integer steps, a context that
holds a value whatever its age. The reference spaces 4 periods linearly (1, 342,
683, 1024): every context then turns by under 0.02 rad a step or not at all, so
S cannot tell recent steps apart (a linear read-out recovers x_{t−4} from it
with R² 0.32) and ffm trailed gru far on POPGym's RepeatPreviousEasy. The
default stays the paper's (``context_size=4``, ``period_spacing=linear``);
``period_spacing=log context_size=8`` spaces the periods geometrically (1, 3, 7,
20, 53, 141, 380, 1024): held and slow contexts as before, plus ones that
resolve the last few steps. It solved RepeatPreviousEasy but learned
RepeatFirstEasy later (2 seeds each: docs/results/zoo.md, "ffm's initial
periods"; tests/test_zoo_cores.py).

The paper unrolls with the closed form S_t = γ^t ⊙ (S_0 + Σ_{s≤t} γ^{−s} ⊙ x̂_s),
whose γ^{−s} overflows for long unrolls (its code clamps α and cuts the
sequence into pieces). The same recurrence, h_t = a_t ⊙ h_{t−1} + b_t with
a_t = γ and b_t = x̂_t, is computed here by the reset-aware parallel scan of
``linear_scan`` (a_t := 0 where an episode starts), exact for any T and α.
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
class FFMConfig:
    hidden_size: int = 128  # O: output width (and of the pass-through and output gate)
    memory_size: int = 32  # m: memory channels, each with its own decay |α_j|
    context_size: int = 4  # c: temporal contexts per channel, each with its own frequency ω_k
    min_period: float = 1.0  # shortest period 2π/ω at initialisation, in steps (1: ω = 2π, no rotation)
    max_period: float = 1024.0  # longest period at initialisation, and the slowest forgetting horizon
    period_spacing: str = "linear"  # periods spaced linearly (the reference) or geometrically (log) in [min, max]
    forgotten_at: float = 0.01  # the slowest channel keeps this fraction of an input after max_period steps

    def __post_init__(self):
        for name in ("hidden_size", "memory_size", "context_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"ffm {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_period <= self.max_period:
            raise ValueError(f"ffm needs 0 < min_period <= max_period, got {self.min_period}, {self.max_period}")
        if self.period_spacing not in ("log", "linear"):
            raise ValueError(f"ffm period_spacing must be log or linear, got {self.period_spacing!r}")
        if not 0 < self.forgotten_at < 1:
            raise ValueError(f"ffm forgotten_at must be in (0, 1), got {self.forgotten_at}; e.g. 0.01")


@register("ffm", FFMConfig)
class FFMCore(MemoryCore):
    """State: ``memory`` [B, m, c, 2], the real and imaginary parts of S, zero at episode start.

    ``forward`` runs the per-step layers on the whole unroll and S by
    ``linear_scan``; ``forward_per_step`` is its slow twin.
    """

    test_config = {"hidden_size": 5, "memory_size": 3, "context_size": 2}

    def __init__(self, input_size: int, config: FFMConfig):
        super().__init__(input_size)
        self.config = config
        m, c, out = config.memory_size, config.context_size, config.hidden_size
        self.output_size = out
        self.pre = nn.Linear(input_size, 2 * m + 2 * out)
        slowest = -math.log(config.forgotten_at) / config.max_period
        self.alpha = nn.Parameter(-torch.linspace(math.log(2), min(slowest, math.log(2)), m))
        if config.period_spacing == "log":
            periods = torch.logspace(math.log10(config.min_period), math.log10(config.max_period), c)
        else:
            periods = torch.linspace(config.min_period, config.max_period, c)
        self.omega = nn.Parameter(2 * math.pi / periods)
        self.mix = nn.Linear(2 * m * c, out)
        self.norm = nn.LayerNorm(out, elementwise_affine=False)

    def initial_state(self, batch_size, device=None):
        shape = (batch_size, self.config.memory_size, self.config.context_size, 2)
        return TensorDict({"memory": torch.zeros(shape, device=device)}, batch_size=[batch_size], device=device)

    def decay(self) -> torch.Tensor:
        """γ [m, c], complex."""
        return torch.exp(torch.complex(-self.alpha.abs()[:, None].expand(-1, self.omega.shape[0]),
                                       self.omega[None, :].expand(self.alpha.shape[0], -1)))

    def _drive(self, x):
        """(x̂ = x̃ ⊙ i as [.., m, c] complex, pass-through p [.., O], output gate o [.., O]) for x [.., I]."""
        m, out, c = self.config.memory_size, self.config.hidden_size, self.config.context_size
        value, through, gates = self.pre(x).split([m, out, m + out], dim=-1)
        in_gate, out_gate = torch.sigmoid(gates).split([m, out], dim=-1)
        gated = (value * in_gate)[..., None].expand(*value.shape, c)
        return torch.complex(gated, torch.zeros_like(gated)), through, out_gate

    def _output(self, memory, through, out_gate):
        z = self.mix(torch.view_as_real(memory).transpose(-1, -2).flatten(-3))  # [Re S, Im S]
        return self.norm(z) * out_gate + through * (1 - out_gate)

    def forward(self, x, state, reset):
        drive, through, out_gate = self._drive(x)
        memory = linear_scan(self.decay(), drive, torch.view_as_complex(state["memory"].contiguous()), reset)
        out = self._output(memory, through, out_gate)
        return out, TensorDict({"memory": torch.view_as_real(memory[-1])}, batch_size=state.batch_size), {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: S_t = γ ⊙ S_{t−1} + x̂_t one step at a time, resets by ``reset_state``."""
        def step(x_t, s):
            drive, through, out_gate = self._drive(x_t)
            memory = self.decay() * torch.view_as_complex(s["memory"].contiguous()) + drive
            new = TensorDict({"memory": torch.view_as_real(memory)}, batch_size=s.batch_size)
            return self._output(memory, through, out_gate), new, {}

        return self.unroll_steps(step, x, state, reset)

"""``mamba``: a selective state-space block (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", Sec. 3 and Fig. 3), in plain PyTorch so that it runs on a CPU.

Per step, with x_t [B, I], E = expand · hidden_size inner channels, N state
size per channel, R = ⌈hidden_size / 16⌉:

    (u_t, g_t) = W_in x_t                                       [E] each
    ū_t = SiLU(Σ_{j<d_conv} w_j ⊙ u_{t−j} + b_conv)             causal depthwise convolution over time
    Δ_t = softplus(W_Δ (W_r ū_t) + b_Δ)                         [E]   input-dependent step size
    B_t = W_B ū_t,  C_t = W_C ū_t                               [N]   input-dependent input/output maps
    A   = −exp(A_log)                                           [E, N] (S4D-real initialisation: A_en = −n)
    h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t ⊙ ū_t) B_tᵀ               [E, N] zero-order hold of A, Euler step for B
    y_t = h_t C_t + D ⊙ ū_t                                     [E]
    out_t = W_out (y_t ⊙ SiLU(g_t))                             [O]

State: the last d_conv − 1 inputs u of the convolution and h, both zero at
an episode start (inputs from before the start do not enter the convolution).

``forward`` computes every per-step map on the whole unroll at once (the
convolution as d_conv shifted, masked sums), then h over T by ``scan``:
``parallel`` is ``linear_scan``, the reset-aware parallel scan (a_t =
exp(Δ_t A), set to 0 where an episode starts); ``sequential`` (the default)
loops over t forming a_t and b_t per step. The parallel scan must hold
a and b for all T steps ([T, B, E, N], E·N = 4096 per env at the default
sizes) and does about 2.5 times the element-wise work of the loop, so on a
CPU, where these element-wise passes dominate, it was measured 2-4 times
slower than the loop (docs/results/zoo.md); its gain is in parallel hardware.
``forward_per_step`` is the slow twin of both. mamba-ssm's fused CUDA scan is used
instead of ``linear_scan`` only when the package imports, the unroll is on
CUDA, and h starts at 0 with no reset after step 0 (that kernel takes
neither an initial state nor resets).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional

from .base import MemoryCore
from .linear_scan import linear_scan
from .registry import register

try:  # mamba-ssm's CUDA kernels, when installed (not needed: the scan below runs anywhere)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as fused_selective_scan
except ImportError:
    fused_selective_scan = None


@dataclass
class MambaConfig:
    hidden_size: int = 128  # O: output width; the inner width is expand * hidden_size
    state_size: int = 16  # N: SSM state entries per inner channel
    expand: int = 2  # inner channels E per output unit
    conv_size: int = 4  # d_conv: taps of the causal depthwise convolution
    dt_min: float = 0.001  # softplus(b_Δ) drawn log-uniformly from [dt_min, dt_max] at initialisation
    dt_max: float = 0.1
    scan: str = "sequential"  # h over the unroll: "sequential" (a loop over T; the faster on CPUs) or "parallel" (linear_scan)

    def __post_init__(self):
        if self.scan not in ("sequential", "parallel"):
            raise ValueError(f"mamba scan must be 'sequential' or 'parallel', got {self.scan!r}")
        for name in ("hidden_size", "state_size", "expand", "conv_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"mamba {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"mamba needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}")


@register("mamba", MambaConfig)
class MambaCore(MemoryCore):
    """State: ``conv`` [B, d_conv − 1, E] (past convolution inputs, oldest first) and ``ssm`` h [B, E, N]."""

    test_config = {"hidden_size": 3, "state_size": 2, "expand": 2, "conv_size": 3}

    def __init__(self, input_size: int, config: MambaConfig):
        super().__init__(input_size)
        self.config = config
        inner, n = config.expand * config.hidden_size, config.state_size
        self.inner_size, self.rank = inner, math.ceil(config.hidden_size / 16)
        self.output_size = config.hidden_size
        self.input = nn.Linear(input_size, 2 * inner)
        self.conv_weight = nn.Parameter(torch.randn(config.conv_size, inner) / math.sqrt(config.conv_size))  # w_j
        self.conv_bias = nn.Parameter(torch.zeros(inner))
        self.select = nn.Linear(inner, self.rank + 2 * n, bias=False)  # W_r, W_B, W_C
        self.step_size = nn.Linear(self.rank, inner)  # W_Δ, b_Δ
        dt = torch.exp(torch.empty(inner).uniform_(math.log(config.dt_min), math.log(config.dt_max)))
        with torch.no_grad():
            self.step_size.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        self.log_neg_a = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(inner, 1))
        self.skip = nn.Parameter(torch.ones(inner))  # D
        self.output = nn.Linear(inner, config.hidden_size)

    def initial_state(self, batch_size, device=None):
        c = self.config
        return TensorDict(
            {"conv": torch.zeros(batch_size, c.conv_size - 1, self.inner_size, device=device),
             "ssm": torch.zeros(batch_size, self.inner_size, c.state_size, device=device)},
            batch_size=[batch_size], device=device,
        )

    def _selection(self, conv_out):
        """(ū, Δ, B_t, C_t) from the convolution's output [.., E]."""
        n = self.config.state_size
        u = functional.silu(conv_out)
        rank, b, c = self.select(u).split([self.rank, n, n], dim=-1)
        return u, functional.softplus(self.step_size(rank)), b, c

    def _output(self, y, u, gate):
        return self.output((y + self.skip * u) * functional.silu(gate))

    def forward(self, x, state, reset):
        steps, taps = x.shape[0], self.config.conv_size
        u, gate = self.input(x).chunk(2, dim=-1)
        # Causal convolution over [past inputs, u]; tap j of step t reads u_{t−j} if it is in t's episode.
        padded = torch.cat([state["conv"].transpose(0, 1), u])  # [taps − 1 + T, B, E]
        episode = torch.zeros(taps - 1 + steps, x.shape[1], dtype=torch.long, device=x.device)
        if reset is not None:
            episode[taps - 1:] = torch.cumsum(reset.long(), 0)
        conv = self.conv_bias
        for j in range(taps):
            source = slice(taps - 1 - j, taps - 1 - j + steps)
            same = (episode[source] == episode[taps - 1:]).to(x.dtype)[..., None]
            conv = conv + self.conv_weight[j] * padded[source] * same
        u_bar, delta, b, c = self._selection(conv)
        scanned = self._fused_scan(u_bar, delta, b, c, state["ssm"], reset)
        if scanned is None and self.config.scan == "parallel":
            decay = torch.exp(delta[..., None] * -self.log_neg_a.exp())  # exp(Δ A) [T, B, E, N]
            drive = (delta * u_bar)[..., None] * b[..., None, :]
            h = linear_scan(decay, drive, state["ssm"], reset)
            scanned = torch.einsum("tben,tbn->tbe", h, c), h[-1]
        elif scanned is None:  # one step at a time, a_t and b_t formed per step: no [T, B, E, N] tensors
            h, ys = state["ssm"], []
            for t, inputs_t in enumerate(zip(u_bar.unbind(0), delta.unbind(0), b.unbind(0), c.unbind(0))):
                if reset is not None:
                    h = torch.where(reset[t, :, None, None], torch.zeros((), dtype=h.dtype), h)
                y_t, h = self._ssm_step(h, *inputs_t)
                ys.append(y_t)
            scanned = torch.stack(ys), h
        y, last = scanned
        # The next unroll's past inputs: the last taps − 1, zero where they precede the last episode's start.
        kept = (episode[steps:] == episode[-1:]).to(x.dtype)[..., None]
        new_state = TensorDict({"conv": (padded[steps:] * kept).transpose(0, 1), "ssm": last},
                               batch_size=state.batch_size)
        return self._output(y, u_bar, gate), new_state, {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: the convolution window and h_t updated one step at a time."""
        def step(x_t, s):
            u, gate = self.input(x_t).chunk(2, dim=-1)
            window = torch.cat([s["conv"], u[:, None]], dim=1)  # [B, taps, E], oldest first
            conv = self.conv_bias + (window.flip(1) * self.conv_weight).sum(1)  # tap j reads u_{t−j}
            u_bar, delta, b, c = self._selection(conv)
            y, h = self._ssm_step(s["ssm"], u_bar, delta, b, c)
            new = TensorDict({"conv": window[:, 1:], "ssm": h}, batch_size=s.batch_size)
            return self._output(y, u_bar, gate), new, {}

        return self.unroll_steps(step, x, state, reset)

    def _ssm_step(self, h, u_bar, delta, b, c):
        """(y_t [B, E], h_t [B, E, N]): h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t ⊙ ū_t) B_tᵀ, y_t = h_t C_t."""
        h = torch.exp(delta[..., None] * -self.log_neg_a.exp()) * h + (delta * u_bar)[..., None] * b[:, None]
        return torch.einsum("ben,bn->be", h, c), h

    def _fused_scan(self, u_bar, delta, b, c, h0, reset):
        """(y [T, B, E], h_T) from mamba-ssm's CUDA kernel, or None where it does not apply."""
        if fused_selective_scan is None or not u_bar.is_cuda:
            return None
        starts_fresh = bool(reset[0].all()) if reset is not None else not bool(h0.any())
        if not starts_fresh or (reset is not None and bool(reset[1:].any())):
            return None
        to_kernel = lambda t: t.permute(1, 2, 0).contiguous()  # noqa: E731  [T, B, F] -> [B, F, T]
        y, last = fused_selective_scan(to_kernel(u_bar), to_kernel(delta), -self.log_neg_a.exp(), to_kernel(b),
                                       to_kernel(c), return_last_state=True)
        return y.permute(2, 0, 1), last

"""``linear_attention``: causal linear attention as a recurrent core (Katharopoulos et al. 2020,
"Transformers are RNNs"; POPGym's "FART").

Per step and head (H heads), with φ(u) = elu(u) + 1 > 0:

    q_t = φ(W_q x_t),  k_t = φ(W_k x_t)   [K]      v_t = W_v x_t   [V]
    S_t = S_{t−1} + k_t v_tᵀ              [K, V]   (the attention's keys and values, summed)
    z_t = z_{t−1} + k_t                   [K]      (the softmax-free normaliser)
    r_t = S_tᵀ q_t / (z_tᵀ q_t + ε)        [V]      = Σ_{s≤t} (q_t·k_s) v_s / Σ_{s≤t} q_t·k_s
    out_t = GELU(W_o [r_t (all heads), x_t] + b_o)

The state (S, z) is restarted from 0 where an episode starts, so r_t attends
over the steps of the current episode only.

Chunked parallel form (``forward``): the unroll is cut into chunks of
``chunk_size`` steps; inside a chunk the reads are one masked attention
matrix, A_ts = q_t·k_s for s ≤ t in the same episode (no reset in (s, t]),
plus the state entering the chunk, read by the steps before the chunk's first
reset; the state leaving the chunk is that state (if no reset) plus the sum
of k_s v_sᵀ over the chunk's last episode. Matrix products over C×C blocks
instead of T outer-product updates; S is never formed per step.
``forward_per_step`` is its slow twin, the recurrence above.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional

from .base import MemoryCore
from .registry import register

EPSILON = 1e-6  # added to the normaliser z_tᵀ q_t (> 0, as φ > 0)


@dataclass
class LinearAttentionConfig:
    hidden_size: int = 128  # O: output width
    heads: int = 4  # H: attention heads
    key_size: int = 32  # K: query/key size per head
    value_size: int = 32  # V: value size per head
    chunk_size: int = 64  # C: steps per chunk of the parallel form

    def __post_init__(self):
        for name in ("hidden_size", "heads", "key_size", "value_size", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"linear_attention {name} must be >= 1, got {getattr(self, name)}")


def feature_map(u: torch.Tensor) -> torch.Tensor:
    """φ(u) = elu(u) + 1, positive everywhere."""
    return functional.elu(u) + 1


@register("linear_attention", LinearAttentionConfig)
class LinearAttentionCore(MemoryCore):
    """State: ``keys_values`` S [B, H, K, V] and ``normalizer`` z [B, H, K], zero at episode start."""

    test_config = {"hidden_size": 5, "heads": 2, "key_size": 3, "value_size": 2, "chunk_size": 4}

    def __init__(self, input_size: int, config: LinearAttentionConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = config.hidden_size
        h, k, v = config.heads, config.key_size, config.value_size
        self.project = nn.Linear(input_size, h * (2 * k + v))
        self.output = nn.Linear(h * v + input_size, config.hidden_size)

    def initial_state(self, batch_size, device=None):
        c = self.config
        return TensorDict(
            {"keys_values": torch.zeros(batch_size, c.heads, c.key_size, c.value_size, device=device),
             "normalizer": torch.zeros(batch_size, c.heads, c.key_size, device=device)},
            batch_size=[batch_size], device=device,
        )

    def _qkv(self, x):
        """q, k [.., H, K] (after φ) and v [.., H, V] for x [.., I]."""
        c = self.config
        q, k, v = self.project(x).unflatten(-1, (c.heads, -1)).split([c.key_size, c.key_size, c.value_size], dim=-1)
        return feature_map(q), feature_map(k), v

    def _output(self, x, numerator, denominator):
        read = numerator / (denominator[..., None] + EPSILON)  # r [.., H, V]
        return functional.gelu(self.output(torch.cat([read.flatten(-2), x], dim=-1)))

    def forward(self, x, state, reset):
        q, k, v = self._qkv(x)
        steps = x.shape[0]
        if reset is None:
            reset = torch.zeros(steps, x.shape[1], dtype=torch.bool, device=x.device)
        keys_values, normalizer = state["keys_values"], state["normalizer"]
        outs = []
        for start in range(0, steps, self.config.chunk_size):
            part = slice(start, start + self.config.chunk_size)
            q_c, k_c, v_c, r_c = q[part], k[part], v[part], reset[part]
            episode = torch.cumsum(r_c.long(), 0)  # [C, B]: resets since the chunk's start
            ends_here = episode == episode[-1:]  # steps of the chunk's last episode
            first = (episode == 0).to(q.dtype)  # steps still in the episode of the incoming state
            causal = torch.ones(len(q_c), len(q_c), dtype=torch.bool, device=x.device).tril()
            same = (episode[:, None] == episode[None, :]) & causal[:, :, None]  # [t, s, B]
            scores = torch.einsum("tbhk,sbhk->tsbh", q_c, k_c) * same[..., None].to(q.dtype)
            numerator = torch.einsum("tsbh,sbhv->tbhv", scores, v_c) \
                + first[..., None, None] * torch.einsum("tbhk,bhkv->tbhv", q_c, keys_values)
            denominator = scores.sum(1) + first[..., None] * torch.einsum("tbhk,bhk->tbh", q_c, normalizer)
            outs.append(self._output(x[part], numerator, denominator))
            # The state leaving the chunk: the incoming one if no reset, plus the last episode's writes.
            kept = (ends_here & (episode == 0))[-1].to(q.dtype)  # [B]: no reset in the chunk
            last = ends_here.to(q.dtype)[..., None, None]
            keys_values = kept[:, None, None, None] * keys_values + torch.einsum("sbhk,sbhv->bhkv", k_c * last, v_c)
            normalizer = kept[:, None, None] * normalizer + (k_c * last).sum(0)
        new_state = TensorDict({"keys_values": keys_values, "normalizer": normalizer}, batch_size=state.batch_size)
        return torch.cat(outs), new_state, {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: S_t = S_{t−1} + k_t v_tᵀ, z_t = z_{t−1} + k_t, read r_t, one step at a time."""
        def step(x_t, s):
            q, k, v = self._qkv(x_t)
            keys_values = s["keys_values"] + k[..., :, None] * v[..., None, :]
            normalizer = s["normalizer"] + k
            numerator = torch.einsum("bhk,bhkv->bhv", q, keys_values)
            denominator = (q * normalizer).sum(-1)
            new = TensorDict({"keys_values": keys_values, "normalizer": normalizer}, batch_size=s.batch_size)
            return self._output(x_t, numerator, denominator), new, {}

        return self.unroll_steps(step, x, state, reset)
